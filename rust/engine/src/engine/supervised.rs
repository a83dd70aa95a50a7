//! The start-up both real-device backends share (cpal's streams in `cpal_backend.rs`, the
//! native PulseAudio host in `pulse_backend.rs`): the rings and callbacks for the formats
//! the backend opened, its first streams, the device parameters, and a [`Supervisor`] that
//! rebuilds lost streams with the backend's own builder. A backend only says how to open its
//! devices; everything after that is written once, here.

use std::sync::Arc;

use crate::cpal_stream::{CallbackSlots, CpalStreams, Granted};
use crate::error::{EngineError, Result};
use crate::supervisor::{Builder, DeviceState, Supervisor};

use super::start::{RunningDevice, Session};
use super::{DeviceParams, Engine, STOP_WAIT};

/// A direction's format as a backend opened it: (rate in Hz, channels); `None` if disabled.
pub(super) type Format = Option<(u32, u16)>;

impl RunningDevice for Supervisor {
    fn stop(&mut self) -> Result<()> {
        // A stream hung in a dead sound server is left behind rather than waited for.
        Supervisor::stop(self, STOP_WAIT);
        Ok(())
    }
}

impl Engine {
    /// Starts a supervised session on devices of `output` and `input` format (not both
    /// disabled): `start` builds the first streams on the callbacks made here,
    /// `period_frames` reads the period from what they were granted, and `rebuilder` is how
    /// the supervisor reopens them at the parameters the rings were made for.
    pub(super) fn start_supervised(
        &self,
        output: Format,
        input: Format,
        realtime: bool,
        start: impl FnOnce(&Arc<CallbackSlots>) -> Result<CpalStreams>,
        period_frames: impl FnOnce(&Granted) -> u32,
        rebuilder: impl FnOnce(DeviceParams, &Arc<CallbackSlots>) -> Builder,
    ) -> Result<Session> {
        if input.is_none() && output.is_none() {
            return Err(EngineError::InvalidInput(
                "both input and output are disabled; enable at least one".into(),
            ));
        }
        let (ends, (out_cb, in_cb)) = self.open_ends(output, input)?;
        let slots = Arc::new(CallbackSlots::new(out_cb, in_cb, realtime));
        let streams = start(&slots)?;
        let params = DeviceParams {
            input_rate: input.map_or(0, |f| f.0),
            output_rate: output.map_or(0, |f| f.0),
            input_channels: input.map_or(0, |f| f.1),
            output_channels: output.map_or(0, |f| f.1),
            period_frames: period_frames(&streams.granted),
        };
        let device_state = Arc::new(DeviceState::default());
        let supervisor = Supervisor::start(
            streams,
            rebuilder(params, &slots),
            slots,
            Arc::clone(&self.health),
            Arc::clone(&device_state),
            Arc::clone(&self.events),
            (input.is_some(), output.is_some()),
        )?;
        Ok(Session::new(
            ends,
            Box::new(supervisor),
            params,
            None,
            Some(device_state),
        ))
    }
}
