//! The cpal backend: real devices, watched by a [`Supervisor`] that rebuilds lost streams.

use std::sync::Arc;

use crate::cpal_device::{self, CpalConfig, ResolvedDevice};
use crate::cpal_stream::{self, CallbackSlots, CpalStreams};
use crate::error::{EngineError, Result};
use crate::supervisor::Builder;

use super::start::Session;
use super::{DeviceParams, Engine};

/// Looks the devices up once, so an unknown device name or an unsupported rate fails at
/// `new()`, not at `start()`.
pub(super) fn check(c: &CpalConfig) -> Result<()> {
    cpal_device::resolve(c, true)?;
    cpal_device::resolve(c, false)?;
    Ok(())
}

impl Engine {
    /// Opens the configured input and output (either may be disabled, not both) and starts
    /// their streams under a supervisor.
    pub(super) fn start_cpal(&self, c: &CpalConfig) -> Result<Session> {
        let input_dev = cpal_device::resolve(c, true)?;
        let output_dev = cpal_device::resolve(c, false)?;
        let format = |d: &ResolvedDevice| (d.rate(), d.channels());
        // The period asked of the device (what cpal grants is in the stats).
        let period = output_dev
            .as_ref()
            .or(input_dev.as_ref())
            .map_or(0, |d| d.period_frames());
        self.start_supervised(
            output_dev.as_ref().map(format),
            input_dev.as_ref().map(format),
            c.realtime(),
            |slots| {
                cpal_stream::start_streams(
                    input_dev.as_ref(),
                    output_dev.as_ref(),
                    slots,
                    &self.health,
                    &self.stats,
                    1,
                )
            },
            |_| period,
            |params, slots| self.rebuilder(c, params, slots),
        )
    }

    /// How the supervisor reopens the devices: looked up again (a new default device is
    /// followed), at the rate and channel count the rings and callbacks were made for.
    fn rebuilder(
        &self,
        c: &CpalConfig,
        params: DeviceParams,
        slots: &Arc<CallbackSlots>,
    ) -> Builder {
        let slots = Arc::clone(slots);
        let health = Arc::clone(&self.health);
        let stats = Arc::clone(&self.stats);
        let c = c.clone();
        Box::new(move |generation| -> Result<CpalStreams> {
            let open = |input: bool, rate: u32, channels: u16| -> Result<Option<ResolvedDevice>> {
                if rate == 0 {
                    return Ok(None);
                }
                let config = CpalConfig {
                    sample_rate: Some(rate),
                    ..c.clone()
                };
                let dev = cpal_device::resolve(&config, input)?;
                match dev {
                    Some(d) if d.channels() != channels => Err(EngineError::Device(format!(
                        "the {} device '{}' now has {} channels, the engine was started with {}; \
                         restart the engine to use it",
                        if input { "input" } else { "output" },
                        d.id(),
                        d.channels(),
                        channels
                    ))),
                    other => Ok(other),
                }
            };
            let input = open(true, params.input_rate, params.input_channels)?;
            let output = open(false, params.output_rate, params.output_channels)?;
            cpal_stream::start_streams(
                input.as_ref(),
                output.as_ref(),
                &slots,
                &health,
                &stats,
                generation,
            )
        })
    }
}
