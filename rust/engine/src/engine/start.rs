//! Starting a backend: the one seam every device backend goes through.
//!
//! A backend is a method `Engine::start_<name>(&self, &Config) -> Result<Session>` in its
//! own file (`virtual_backend.rs`, `cpal_backend.rs`) that opens its devices and builds the
//! session from the shared pieces here: `make_output` and `make_input` (a ring and its
//! callback at a device's rate and channel count), `attach_echo` (an output and an input
//! joined through the echo canceller), `open_ends` (all of that for the directions a backend
//! opens), and `Session::new`. The real-device backends go through `start_supervised`
//! (`supervised.rs`), which adds their supervisor. The running device is a `RunningDevice`,
//! so `stop()` does not know the backends.
//!
//! A new backend is: a variant of [`Backend`] (its arms in `config.rs`: validation, and in
//! `status.rs`: what the status says without a session), its start method in its own file,
//! and one arm each in `check_backend` and `start_session` below.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use crate::aec::stage::EchoStage;
use crate::aec::tap::reference_channel;
use crate::callback::{InputCallback, OutputCallback};
use crate::capture::{capture_channel, CaptureReader};
use crate::error::Result;
use crate::playback::{playback_channel, PlaybackProducer, PlaybackShared};
use crate::supervisor::DeviceState;
use crate::virtual_device::VirtualShared;

#[cfg(target_os = "linux")]
use super::pulse_backend;
use super::{cpal_backend, lock, ms_to_frames, virtual_backend, Backend, Engine};

/// The rates and sizes the devices were opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceParams {
    /// Input rate in Hz (0 without input).
    pub input_rate: u32,
    /// Output rate in Hz (0 without output).
    pub output_rate: u32,
    /// Input channels (0 without input).
    pub input_channels: u16,
    /// Output channels (0 without output).
    pub output_channels: u16,
    /// Frames per callback asked for.
    pub period_frames: u32,
}

/// A backend's running devices, as `stop()` sees them.
pub(super) trait RunningDevice: Send {
    /// Stops the callbacks and closes the devices, within [`super::STOP_WAIT`] for real
    /// devices.
    fn stop(&mut self) -> Result<()>;
}

/// One start..stop of the devices, with its rings.
pub(super) struct Session {
    pub(super) producer: Option<Mutex<PlaybackProducer>>,
    pub(super) playback: Option<Arc<PlaybackShared>>,
    pub(super) reader: Option<Mutex<CaptureReader>>,
    pub(super) device: Mutex<Option<Box<dyn RunningDevice>>>,
    pub(super) params: DeviceParams,
    pub(super) virtual_shared: Option<Arc<VirtualShared>>,
    pub(super) running: AtomicBool,
    /// Real devices only: lost or not, why, what the host granted.
    pub(super) device_state: Option<Arc<DeviceState>>,
}

impl Session {
    /// A running session over the rings' engine-side ends and the started device.
    pub(super) fn new(
        ends: Ends,
        device: Box<dyn RunningDevice>,
        params: DeviceParams,
        virtual_shared: Option<Arc<VirtualShared>>,
        device_state: Option<Arc<DeviceState>>,
    ) -> Self {
        Self {
            playback: ends.producer.as_ref().map(|p| Arc::clone(p.shared())),
            producer: ends.producer.map(Mutex::new),
            reader: ends.reader.map(Mutex::new),
            device: Mutex::new(Some(device)),
            params,
            virtual_shared,
            running: AtomicBool::new(true),
            device_state,
        }
    }

    /// `Some(state)` while the real devices are gone.
    pub(super) fn lost(&self) -> Option<&DeviceState> {
        self.device_state.as_deref().filter(|s| s.is_lost())
    }
}

/// The engine's ends of the rings, kept by the session, for the directions a backend opens.
pub(super) struct Ends {
    /// Playback producer, with an output.
    pub(super) producer: Option<PlaybackProducer>,
    /// Capture reader, with an input.
    pub(super) reader: Option<CaptureReader>,
}

/// The device callbacks a backend hands to its streams, for the directions it opens.
pub(super) type Callbacks = (Option<OutputCallback>, Option<InputCallback>);

impl Engine {
    /// Checks that the backend can start, at `new()`: a bad WAV or an unknown device fails
    /// there, not at `start()`.
    pub(super) fn check_backend(backend: &Backend) -> Result<()> {
        match backend {
            Backend::Virtual(v) => virtual_backend::check(v),
            #[cfg(target_os = "linux")]
            Backend::Cpal(c) if crate::pulse::chosen(c.host) => pulse_backend::check(c),
            Backend::Cpal(c) => cpal_backend::check(c),
        }
    }

    /// Opens the configured backend's devices and starts their callbacks.
    pub(super) fn start_session(&self) -> Result<Session> {
        match &self.config.backend {
            Backend::Virtual(v) => self.start_virtual(v),
            #[cfg(target_os = "linux")]
            Backend::Cpal(c) if crate::pulse::chosen(c.host) => self.start_pulse(c),
            Backend::Cpal(c) => self.start_cpal(c),
        }
    }

    /// The playback ring and output callback for an output at `rate` with `channels`.
    pub(super) fn make_output(
        &self,
        rate: u32,
        channels: u16,
    ) -> Result<(PlaybackProducer, OutputCallback)> {
        let (producer, renderer) = playback_channel(
            rate,
            ms_to_frames(f64::from(self.config.playback_buffer_ms), rate),
            ms_to_frames(f64::from(self.config.prebuffer_ms), rate),
            ms_to_frames(self.config.fade_ms, rate),
            Arc::clone(&self.stats),
        )?;
        let cb = OutputCallback::new(renderer, channels, rate, Arc::clone(&self.stats));
        Ok((producer, cb))
    }

    /// The capture ring and input callback for an input at `rate` with `channels`.
    pub(super) fn make_input(
        &self,
        rate: u32,
        channels: u16,
    ) -> Result<(CaptureReader, InputCallback)> {
        let (writer, reader) = capture_channel(
            rate,
            ms_to_frames(f64::from(self.config.capture_buffer_ms), rate),
            self.config.chunk_ms,
            Arc::clone(&self.stats),
        )?;
        let cb = InputCallback::new(writer, channels, rate, Arc::clone(&self.stats));
        Ok((reader, cb))
    }

    /// Connects an output and an input through the echo canceller: the output callback taps
    /// what it renders, the input callback publishes the pairing counters, and the reader
    /// runs the canceller (switched on or off by [`Engine::set_echo_cancellation`]).
    pub(super) fn attach_echo(
        &self,
        out_cb: OutputCallback,
        in_cb: InputCallback,
        reader: &mut CaptureReader,
        output_rate: u32,
        input_rate: u32,
    ) -> Result<(OutputCallback, InputCallback)> {
        // Longer than the capture ring, so the reference outlives any capture backlog.
        let capacity = ms_to_frames(
            f64::from(self.config.capture_buffer_ms) + 1_000.0,
            output_rate,
        );
        let (tap, clock, tap_reader) = reference_channel(output_rate, input_rate, capacity);
        let options = *lock(&self.echo_options);
        let stage = EchoStage::new(
            tap_reader,
            input_rate,
            output_rate,
            options,
            Arc::clone(&self.echo),
        )?;
        reader.set_echo(stage);
        Ok((out_cb.with_reference_tap(tap), in_cb.with_echo_clock(clock)))
    }

    /// The rings and callbacks for an output and an input, each `(rate, channels)` or absent;
    /// when both exist they are joined through the echo canceller (it needs both).
    pub(super) fn open_ends(
        &self,
        output: Option<(u32, u16)>,
        input: Option<(u32, u16)>,
    ) -> Result<(Ends, Callbacks)> {
        let output_end = output
            .map(|(rate, channels)| self.make_output(rate, channels))
            .transpose()?;
        let input_end = input
            .map(|(rate, channels)| self.make_input(rate, channels))
            .transpose()?;
        let (producer, out_cb) = output_end.map_or((None, None), |(p, cb)| (Some(p), Some(cb)));
        let (mut reader, in_cb) = input_end.map_or((None, None), |(r, cb)| (Some(r), Some(cb)));
        let (out_cb, in_cb) = match (out_cb, in_cb, reader.as_mut(), output, input) {
            (Some(o), Some(i), Some(r), Some((out_rate, _)), Some((in_rate, _))) => {
                let (o, i) = self.attach_echo(o, i, r, out_rate, in_rate)?;
                (Some(o), Some(i))
            }
            (o, i, ..) => (o, i),
        };
        Ok((Ends { producer, reader }, (out_cb, in_cb)))
    }
}
