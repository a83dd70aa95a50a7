//! The native PulseAudio backend (`host="pulse"`, or `"auto"` where a server answers): the
//! engine's own protocol client ([`crate::pulse`]) behind the same callbacks, supervisor,
//! events and stats as the cpal streams.

use std::sync::Arc;

use crate::cpal_device::CpalConfig;
use crate::cpal_stream::CallbackSlots;
use crate::error::Result;
use crate::pulse;
use crate::supervisor::Builder;

use super::start::Session;
use super::Engine;

/// Looks the sink and source up once, so an unknown name fails at `new()`.
pub(super) fn check(c: &CpalConfig) -> Result<()> {
    pulse::resolve(c, 0.0).map(|_| ())
}

impl Engine {
    /// Opens the configured sink and source (either may be disabled, not both) on one
    /// connection and starts its device thread under a supervisor.
    pub(super) fn start_pulse(&self, c: &CpalConfig) -> Result<Session> {
        let devices = pulse::resolve(c, self.config.fade_ms)?;
        let format = |d: &pulse::Endpoint| (d.rate, d.channels);
        self.start_supervised(
            devices.output.as_ref().map(format),
            devices.input.as_ref().map(format),
            c.realtime(),
            |slots| pulse::start_streams(&devices, slots, &self.health, &self.stats, 1),
            // What the server granted; the output's where there is one.
            |granted| match granted.output_period_frames {
                0 => granted.input_period_frames,
                n => n,
            },
            |_, slots| self.pulse_rebuilder(c, &devices, slots),
        )
    }

    /// Reopens by name (a new default sink or source is followed) at the rings' rate and
    /// channel count: the server converts whatever the device now runs at.
    fn pulse_rebuilder(
        &self,
        c: &CpalConfig,
        first: &pulse::PulseDevices,
        slots: &Arc<CallbackSlots>,
    ) -> Builder {
        let (slots, health, stats) = (
            Arc::clone(slots),
            Arc::clone(&self.health),
            Arc::clone(&self.stats),
        );
        let (c, first, fade_ms) = (c.clone(), first.clone(), self.config.fade_ms);
        Box::new(move |generation| {
            let mut d = pulse::resolve(&c, fade_ms)?;
            for (now, was) in [(&mut d.output, &first.output), (&mut d.input, &first.input)] {
                if let (Some(n), Some(w)) = (now.as_mut(), was.as_ref()) {
                    n.rate = w.rate;
                    n.channels = w.channels;
                }
            }
            pulse::start_streams(&d, &slots, &health, &stats, generation)
        })
    }
}
