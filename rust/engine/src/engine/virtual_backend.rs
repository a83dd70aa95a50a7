//! The virtual backend: a clock thread drives both callbacks (see [`crate::virtual_device`]).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::error::Result;
use crate::virtual_device::{VirtualConfig, VirtualDevice, VirtualShared};

use super::start::{Ends, RunningDevice, Session};
use super::{DeviceParams, Engine};

/// Loads the virtual input once, so a bad WAV file fails at `new()`.
pub(super) fn check(v: &VirtualConfig) -> Result<()> {
    v.prepare_input().map(drop)
}

impl RunningDevice for VirtualDevice {
    fn stop(&mut self) -> Result<()> {
        VirtualDevice::stop(self)
    }
}

impl Engine {
    /// Starts the virtual device: always both directions, at one rate and channel count.
    pub(super) fn start_virtual(&self, v: &VirtualConfig) -> Result<Session> {
        let input = v.prepare_input()?;
        // NaN/inf in a WAV or an array were replaced when the clip was loaded.
        self.stats
            .nonfinite_samples
            .fetch_add(input.nonfinite_replaced(), Relaxed);
        let (producer, out_cb) = self.make_output(v.sample_rate, v.channels)?;
        let (mut reader, in_cb) = self.make_input(v.sample_rate, v.channels)?;
        let (out_cb, in_cb) =
            self.attach_echo(out_cb, in_cb, &mut reader, v.sample_rate, v.sample_rate)?;
        let shared = Arc::new(VirtualShared::default());
        let device = VirtualDevice::start(v, input, in_cb, out_cb, Arc::clone(&shared))?;
        let params = DeviceParams {
            input_rate: v.sample_rate,
            output_rate: v.sample_rate,
            input_channels: v.channels,
            output_channels: v.channels,
            period_frames: v.period_frames,
        };
        let ends = Ends {
            producer: Some(producer),
            reader: Some(reader),
        };
        Ok(Session::new(
            ends,
            Box::new(device),
            params,
            Some(shared),
            None,
        ))
    }
}
