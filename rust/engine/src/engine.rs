//! [`Engine`]: the non-real-time facade that owns the device, the rings and the resamplers.
//!
//! Every method takes `&self` and may be called from any thread. Calls that may wait
//! ([`Engine::play`], [`Engine::read`], [`Engine::end_turn`]) hold the engine's locks only
//! for the copy or resampling of one chunk, never while they wait, so [`Engine::interrupt`]
//! always returns at once.

use std::sync::atomic::{
    AtomicBool, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use crate::aec::stage::{EchoShared, EchoStage, EchoStats};
use crate::aec::tap::reference_channel;
use crate::aec::AecOptions;
use crate::callback::{InputCallback, OutputCallback};
use crate::capture::{capture_channel, CaptureReader};
use crate::convert::to_dbfs;
use crate::cpal_device::{self, device_error_name, CpalConfig, ResolvedDevice};
use crate::cpal_stream::{self, CallbackSlots, CpalStreams};
use crate::device_health::DeviceHealth;
use crate::error::{EngineError, Result};
use crate::playback::{
    playback_channel, InterruptReport, PlaybackProducer, PlaybackShared, MODEL_RATE_HZ,
};
use crate::stats::{SharedStats, Stats};
use crate::supervisor::{Builder, DeviceEvent, DeviceState, EventLog, Supervisor};
use crate::virtual_device::{VirtualConfig, VirtualDevice, VirtualShared};
use crate::wait::{playback_full, wait_for, Attempt};

/// Which devices the engine drives.
#[derive(Debug, Clone, PartialEq)]
pub enum Backend {
    /// Real devices through cpal.
    Cpal(CpalConfig),
    /// The clock-driven virtual device.
    Virtual(VirtualConfig),
}

/// Engine settings. `Default` gives 20 ms capture chunks, a 200 ms jitter buffer, a 5 ms
/// flush fade, 2 s of capture buffer and 120 s of playback buffer on the default devices.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Devices to open.
    pub backend: Backend,
    /// Length of each 16 kHz capture chunk in milliseconds (10..=1000).
    pub chunk_ms: u32,
    /// Audio a turn queues before it starts playing, in milliseconds.
    pub prebuffer_ms: u32,
    /// Playback ring size in milliseconds of device audio.
    pub playback_buffer_ms: u32,
    /// Capture ring size in milliseconds of device audio.
    pub capture_buffer_ms: u32,
    /// Fade-out length of a flush in milliseconds.
    pub fade_ms: f64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Cpal(CpalConfig::default()),
            chunk_ms: 20,
            prebuffer_ms: 200,
            playback_buffer_ms: 120_000,
            capture_buffer_ms: 2_000,
            fade_ms: 5.0,
        }
    }
}

impl EngineConfig {
    fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(EngineError::InvalidInput(msg));
        if !(10..=1000).contains(&self.chunk_ms) {
            return bad(format!(
                "chunk_ms must be 10..=1000 (the Live API wants 20-40 ms), got {}",
                self.chunk_ms
            ));
        }
        if self.prebuffer_ms > 10_000 {
            return bad(format!(
                "prebuffer_ms must be at most 10000, got {}",
                self.prebuffer_ms
            ));
        }
        if !(100..=3_600_000).contains(&self.playback_buffer_ms) {
            return bad(format!(
                "playback_buffer_ms must be 100..=3600000, got {}",
                self.playback_buffer_ms
            ));
        }
        if !(100..=600_000).contains(&self.capture_buffer_ms) {
            return bad(format!(
                "capture_buffer_ms must be 100..=600000, got {}",
                self.capture_buffer_ms
            ));
        }
        if !(self.fade_ms > 0.0 && self.fade_ms <= 100.0) {
            return bad(format!("fade_ms must be in (0, 100], got {}", self.fade_ms));
        }
        if self.prebuffer_ms >= self.playback_buffer_ms {
            return bad(format!(
                "prebuffer_ms ({}) must be smaller than playback_buffer_ms ({}); lower the \
                 prebuffer or raise the buffer",
                self.prebuffer_ms, self.playback_buffer_ms
            ));
        }
        match &self.backend {
            Backend::Cpal(c) => Self::validate_cpal(c),
            Backend::Virtual(v) => v.validate(),
        }
    }

    /// Real devices: a rate or period asked for must be one a sound card can have, so a typo
    /// (`sample_rate=7`, `period_frames=0`) is refused instead of silently rounded.
    fn validate_cpal(c: &CpalConfig) -> Result<()> {
        if let Some(rate) = c.sample_rate {
            if !(8_000..=384_000).contains(&rate) {
                return Err(EngineError::InvalidInput(format!(
                    "sample_rate {rate} Hz is not a device rate; use 8000..=384000 (e.g. 48000), \
                     or leave it unset to use the device's own rate (the engine resamples)"
                )));
            }
        }
        if let Some(period) = c.period_frames {
            let max = crate::callback::MAX_BLOCK_FRAMES as u32;
            if !(16..=max).contains(&period) {
                return Err(EngineError::InvalidInput(format!(
                    "period_frames {period} is not supported; use 16..={max} (480 = 10 ms at \
                     48 kHz), or leave it unset for about 10 ms"
                )));
            }
        }
        Ok(())
    }
}

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

enum DeviceHandle {
    Cpal(Supervisor),
    Virtual(VirtualDevice),
}

/// Longest `stop()` waits for real devices to shut down. A stream whose sound server died
/// can hang in its backend for ever; it is left behind rather than hanging the caller.
pub const STOP_WAIT: Duration = Duration::from_millis(400);

/// What `DeviceStatus` says about the virtual device's clock thread.
const VIRTUAL_THREAD: &str = "virtual clock";

/// The health of real devices: a snapshot from [`Engine::device_status`].
///
/// Gaps are what a listener lost below the engine's ring, found from the device's frame
/// clock (see [`crate::device_health::FrameClock`]); `*_backend_xruns` are the xruns the
/// backend itself reported (ALSA `EPIPE`). Frame counts are converted to milliseconds at
/// the device rate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceStatus {
    /// "running", "lost" (gone; the engine retries), "stopped", or "virtual".
    pub state: String,
    /// Why the devices are gone (empty while they run).
    pub lost_reason: String,
    /// Streams given up because they died.
    pub losses: u64,
    /// Successful rebuilds after a loss.
    pub restores: u64,
    /// Dead streams that hung in their backend on shutdown and were left behind.
    pub leaked_streams: u64,
    /// Output device id (e.g. `alsa:default`), empty without output.
    pub output_device: String,
    /// Input device id, empty without input.
    pub input_device: String,
    /// Device buffer asked for, in milliseconds (the `latency` setting).
    pub latency_requested_ms: f64,
    /// Output period the host granted, in frames (read back from the stream).
    pub output_period_frames: u32,
    /// Input period the host granted, in frames.
    pub input_period_frames: u32,
    /// Audio queued ahead of the listener at the last output callback, per the host's
    /// timestamps (the output latency the host really runs at), in milliseconds.
    pub output_delay_ms: f64,
    /// Audio waiting in the input device at the last input callback, in milliseconds.
    pub input_delay_ms: f64,
    /// Output underruns below the ring (the device played silence it was not given).
    pub output_device_underruns: u64,
    /// Audio lost to them, in milliseconds.
    pub output_device_underrun_ms: f64,
    /// Input overruns below the ring (audio the device produced and dropped).
    pub input_device_overruns: u64,
    /// Audio lost to them, in milliseconds.
    pub input_device_overrun_ms: f64,
    /// Xruns the backend reported on the output.
    pub output_backend_xruns: u64,
    /// Xruns the backend reported on the input.
    pub input_backend_xruns: u64,
    /// Every error callback of the output streams.
    pub output_error_callbacks: u64,
    /// Every error callback of the input streams.
    pub input_error_callbacks: u64,
    /// Scheduling of the output device thread: "realtime", "normal (...)", "" before it ran.
    pub output_thread: String,
    /// Scheduling of the input device thread.
    pub input_thread: String,
}

/// One start..stop of the devices, with its rings.
struct Session {
    producer: Option<Mutex<PlaybackProducer>>,
    playback: Option<Arc<PlaybackShared>>,
    reader: Option<Mutex<CaptureReader>>,
    device: Mutex<Option<DeviceHandle>>,
    params: DeviceParams,
    virtual_shared: Option<Arc<VirtualShared>>,
    running: AtomicBool,
    /// Real devices only: lost or not, why, what the host granted.
    device_state: Option<Arc<DeviceState>>,
}

impl Session {
    /// `Some(state)` while the real devices are gone.
    fn lost(&self) -> Option<&DeviceState> {
        self.device_state.as_deref().filter(|s| s.is_lost())
    }
}

/// A full-duplex audio engine: capture chunks out, model audio in, flush on interrupt.
pub struct Engine {
    config: EngineConfig,
    stats: Arc<SharedStats>,
    session: RwLock<Option<Arc<Session>>>,
    last_virtual: Mutex<Option<Arc<VirtualShared>>>,
    /// The devices' parameters of the last start, so stats() stays meaningful after stop().
    last_params: Mutex<DeviceParams>,
    closed: AtomicBool,
    /// Device events of every session (lost, restored).
    events: Arc<EventLog>,
    /// What the device threads report (totals over the engine's life).
    health: Arc<DeviceHealth>,
    /// Device state of the last real-device session (kept after stop for stats()).
    last_device_state: Mutex<Option<Arc<DeviceState>>>,
    /// Echo cancellation switch and counters (kept across start/stop).
    echo: Arc<EchoShared>,
    /// The canceller's settings for the next start (and the running one).
    echo_options: Mutex<AecOptions>,
    /// `capture_overflow_frames` at the last read, and whether that read found it grown.
    overflow_mark: AtomicU64,
    overflowed: AtomicBool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .field("running", &self.is_running())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding an engine lock leaves plain data behind; keep going.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn ms_to_frames(ms: f64, rate: u32) -> usize {
    (ms * f64::from(rate) / 1000.0).round() as usize
}

/// How long `frames` of audio last at `rate` (what a waiter sleeps; `wait_for` bounds it).
fn frames_to_duration(frames: usize, rate: u32) -> Duration {
    Duration::from_secs_f64(frames as f64 / f64::from(rate.max(1)))
}

/// The blocking calls have nothing to check between sleeps.
fn no_check() -> Result<()> {
    Ok(())
}

impl Engine {
    /// Creates a stopped engine after checking the settings: real devices are looked up (an
    /// unknown name, an unsupported rate or a device that cannot be opened fails here), and
    /// the virtual device's input is loaded (a bad WAV file fails here).
    ///
    /// # Errors
    /// [`EngineError::InvalidInput`] or [`EngineError::Wav`] for bad settings.
    pub fn new(config: EngineConfig) -> Result<Self> {
        config.validate()?;
        match &config.backend {
            Backend::Virtual(v) => {
                v.prepare_input()?;
            }
            // Finds an unknown device name or an unsupported rate now, not at start().
            Backend::Cpal(c) => {
                cpal_device::resolve(c, true)?;
                cpal_device::resolve(c, false)?;
            }
        }
        Ok(Self {
            config,
            stats: Arc::new(SharedStats::default()),
            session: RwLock::new(None),
            last_virtual: Mutex::new(None),
            last_params: Mutex::new(DeviceParams::default()),
            closed: AtomicBool::new(false),
            events: Arc::new(EventLog::default()),
            health: Arc::new(DeviceHealth::default()),
            last_device_state: Mutex::new(None),
            echo: Arc::new(EchoShared::default()),
            echo_options: Mutex::new(AecOptions::default()),
            overflow_mark: AtomicU64::new(0),
            overflowed: AtomicBool::new(false),
        })
    }

    /// The settings the engine was made with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Whether the devices are running.
    pub fn is_running(&self) -> bool {
        self.current().is_some_and(|s| s.running.load(Acquire))
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Acquire)
    }

    fn current(&self) -> Option<Arc<Session>> {
        self.session
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn running_session(&self) -> Result<Arc<Session>> {
        if self.is_closed() {
            return Err(EngineError::Closed(
                "the engine is closed; create a new AudioEngine".into(),
            ));
        }
        match self.current() {
            Some(s) if s.running.load(Acquire) => Ok(s),
            _ => Err(EngineError::Closed(
                "the engine is not running; call start() first or use it as a context manager \
                 (`with AudioEngine(...) as engine:`)"
                    .into(),
            )),
        }
    }

    /// Opens the devices and starts the callbacks. Starting a running engine does nothing.
    ///
    /// # Errors
    /// [`EngineError::Closed`] after `close()`; device and WAV errors from the backend.
    pub fn start(&self) -> Result<()> {
        if self.is_closed() {
            return Err(EngineError::Closed(
                "the engine is closed; create a new AudioEngine".into(),
            ));
        }
        let mut slot = self
            .session
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.as_ref().is_some_and(|s| s.running.load(Acquire)) {
            return Ok(());
        }
        let session = match &self.config.backend {
            Backend::Virtual(v) => self.start_virtual(v)?,
            Backend::Cpal(c) => self.start_cpal(c)?,
        };
        if let Some(v) = &session.virtual_shared {
            *lock(&self.last_virtual) = Some(Arc::clone(v));
        }
        if let Some(d) = &session.device_state {
            *lock(&self.last_device_state) = Some(Arc::clone(d));
        }
        *lock(&self.last_params) = session.params;
        *slot = Some(Arc::new(session));
        Ok(())
    }

    fn make_output(&self, rate: u32, channels: u16) -> Result<(PlaybackProducer, OutputCallback)> {
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

    fn make_input(&self, rate: u32, channels: u16) -> Result<(CaptureReader, InputCallback)> {
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
    fn attach_echo(
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

    fn start_virtual(&self, v: &VirtualConfig) -> Result<Session> {
        let input = v.prepare_input()?;
        // NaN/inf in a WAV or an array were replaced when the clip was loaded.
        self.stats
            .nonfinite_samples
            .fetch_add(input.nonfinite_replaced(), Relaxed);
        let (producer, out_cb) = self.make_output(v.sample_rate, v.channels)?;
        let (mut reader, in_cb) = self.make_input(v.sample_rate, v.channels)?;
        let (out_cb, in_cb) =
            self.attach_echo(out_cb, in_cb, &mut reader, v.sample_rate, v.sample_rate)?;
        let playback = Arc::clone(producer.shared());
        let shared = Arc::new(VirtualShared::default());
        let device = VirtualDevice::start(v, input, in_cb, out_cb, Arc::clone(&shared))?;
        Ok(Session {
            producer: Some(Mutex::new(producer)),
            playback: Some(playback),
            reader: Some(Mutex::new(reader)),
            device: Mutex::new(Some(DeviceHandle::Virtual(device))),
            params: DeviceParams {
                input_rate: v.sample_rate,
                output_rate: v.sample_rate,
                input_channels: v.channels,
                output_channels: v.channels,
                period_frames: v.period_frames,
            },
            virtual_shared: Some(shared),
            running: AtomicBool::new(true),
            device_state: None,
        })
    }

    fn start_cpal(&self, c: &CpalConfig) -> Result<Session> {
        let input_dev = cpal_device::resolve(c, true)?;
        let output_dev = cpal_device::resolve(c, false)?;
        if input_dev.is_none() && output_dev.is_none() {
            return Err(EngineError::InvalidInput(
                "both input and output are disabled; enable at least one".into(),
            ));
        }
        let output = output_dev
            .as_ref()
            .map(|d| self.make_output(d.rate(), d.channels()))
            .transpose()?;
        let input = input_dev
            .as_ref()
            .map(|d| self.make_input(d.rate(), d.channels()))
            .transpose()?;
        let (producer, mut out_cb) = output.map_or((None, None), |(p, cb)| (Some(p), Some(cb)));
        let (mut reader, mut in_cb) = input.map_or((None, None), |(r, cb)| (Some(r), Some(cb)));
        // Echo cancellation needs both directions.
        if let (Some(r), Some(od), Some(id)) =
            (reader.as_mut(), output_dev.as_ref(), input_dev.as_ref())
        {
            if let (Some(o), Some(i)) = (out_cb.take(), in_cb.take()) {
                let (o, i) = self.attach_echo(o, i, r, od.rate(), id.rate())?;
                out_cb = Some(o);
                in_cb = Some(i);
            }
        }
        let slots = Arc::new(CallbackSlots::new(out_cb, in_cb, c.realtime()));
        let streams = cpal_stream::start_streams(
            input_dev.as_ref(),
            output_dev.as_ref(),
            &slots,
            &self.health,
            &self.stats,
            1,
        )?;
        let params = DeviceParams {
            input_rate: input_dev.as_ref().map_or(0, |d| d.rate()),
            output_rate: output_dev.as_ref().map_or(0, |d| d.rate()),
            input_channels: input_dev.as_ref().map_or(0, |d| d.channels()),
            output_channels: output_dev.as_ref().map_or(0, |d| d.channels()),
            period_frames: output_dev
                .as_ref()
                .or(input_dev.as_ref())
                .map_or(0, |d| d.period_frames()),
        };
        let device_state = Arc::new(DeviceState::default());
        let supervisor = Supervisor::start(
            streams,
            self.rebuilder(c, params, &slots),
            slots,
            Arc::clone(&self.health),
            Arc::clone(&device_state),
            Arc::clone(&self.events),
            (input_dev.is_some(), output_dev.is_some()),
        )?;
        Ok(Session {
            playback: producer.as_ref().map(|p| Arc::clone(p.shared())),
            producer: producer.map(Mutex::new),
            reader: reader.map(Mutex::new),
            device: Mutex::new(Some(DeviceHandle::Cpal(supervisor))),
            params,
            virtual_shared: None,
            running: AtomicBool::new(true),
            device_state: Some(device_state),
        })
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

    /// Stops the callbacks and closes the devices; queued audio is dropped. The engine can be
    /// started again. A virtual device's output WAV is complete when this returns.
    ///
    /// # Errors
    /// [`EngineError::Wav`] if the virtual device could not finish its output file.
    pub fn stop(&self) -> Result<()> {
        let session = self
            .session
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(session) = session else {
            return Ok(());
        };
        session.running.store(false, Release);
        let handle = lock(&session.device).take();
        let result = match handle {
            Some(DeviceHandle::Virtual(mut v)) => v.stop(),
            Some(DeviceHandle::Cpal(mut supervisor)) => {
                supervisor.stop(STOP_WAIT);
                Ok(())
            }
            None => Ok(()),
        };
        // The callbacks have stopped: what is still queued will never play. Count it as
        // flushed, so frames_pushed = frames_played + flushed_frames holds after a stop.
        if let Some(p) = &session.producer {
            lock(p).discard_on_stop();
        }
        result
    }

    /// Stops the engine for good; every later call fails with [`EngineError::Closed`].
    ///
    /// # Errors
    /// As [`stop`](Self::stop).
    pub fn close(&self) -> Result<()> {
        let result = self.stop();
        self.closed.store(true, Release);
        result
    }

    /// The oldest device event not handed out yet (`device_lost`, `device_restored`),
    /// waiting up to `timeout` (`None` = until one comes). Events of every session queue
    /// up in order until taken; the oldest are dropped beyond 256.
    pub fn next_device_event(&self, timeout: Option<Duration>) -> Option<DeviceEvent> {
        self.events.next(timeout)
    }

    /// The health of the real devices: lost or running, what the host granted, and the
    /// gaps below the engine's ring. Cheap; from any thread; also after `stop()`.
    pub fn device_status(&self) -> DeviceStatus {
        let session = self.current();
        let state = session
            .as_ref()
            .and_then(|s| s.device_state.clone())
            .or_else(|| lock(&self.last_device_state).clone());
        let params = session
            .as_ref()
            .map_or_else(|| *lock(&self.last_params), |x| x.params);
        let ms = |frames: u64, rate: u32| frames as f64 * 1000.0 / f64::from(rate.max(1));
        let h = &self.health;
        let Some(state) = state else {
            return match &self.config.backend {
                // The virtual clock has no host below it: its periods are exact and it never
                // loses audio, so its gap counters are truly zero.
                Backend::Virtual(v) => DeviceStatus {
                    state: "virtual".into(),
                    output_device: "virtual".into(),
                    input_device: "virtual".into(),
                    output_period_frames: v.period_frames,
                    input_period_frames: v.period_frames,
                    output_thread: VIRTUAL_THREAD.into(),
                    input_thread: VIRTUAL_THREAD.into(),
                    ..DeviceStatus::default()
                },
                Backend::Cpal(_) => DeviceStatus {
                    state: "stopped".into(),
                    ..DeviceStatus::default()
                },
            };
        };
        let granted = state.granted();
        let running = session.as_ref().is_some_and(|s| s.running.load(Acquire));
        let latency_requested_ms = match &self.config.backend {
            Backend::Cpal(c) => c.buffer_ms(params.output_rate.max(params.input_rate)),
            Backend::Virtual(_) => 0.0,
        };
        let rt = |v: u8| {
            crate::device_health::RtStatus::from_u8(v)
                .name()
                .to_string()
        };
        DeviceStatus {
            state: if !running {
                "stopped"
            } else if state.is_lost() {
                "lost"
            } else {
                "running"
            }
            .into(),
            lost_reason: if state.is_lost() {
                state.why()
            } else {
                String::new()
            },
            losses: state.losses.load(Relaxed),
            restores: state.restores.load(Relaxed),
            leaked_streams: state.leaked_streams.load(Relaxed),
            output_device: granted.output_device,
            input_device: granted.input_device,
            latency_requested_ms,
            output_period_frames: granted.output_period_frames,
            input_period_frames: granted.input_period_frames,
            output_delay_ms: ms(h.output.delay_frames.load(Relaxed), params.output_rate),
            input_delay_ms: ms(h.input.delay_frames.load(Relaxed), params.input_rate),
            output_device_underruns: h.output.gaps.load(Relaxed),
            output_device_underrun_ms: ms(h.output.gap_frames.load(Relaxed), params.output_rate),
            input_device_overruns: h.input.gaps.load(Relaxed),
            input_device_overrun_ms: ms(h.input.gap_frames.load(Relaxed), params.input_rate),
            output_backend_xruns: h.output.backend_xruns.load(Relaxed),
            input_backend_xruns: h.input.backend_xruns.load(Relaxed),
            output_error_callbacks: h.output.error_callbacks.load(Relaxed),
            input_error_callbacks: h.input.error_callbacks.load(Relaxed),
            output_thread: rt(h.output.rt.load(Relaxed)),
            input_thread: rt(h.input.rt.load(Relaxed)),
        }
    }

    /// The rates and channel counts the devices run at (zeros while stopped).
    pub fn device_params(&self) -> DeviceParams {
        self.current().map(|s| s.params).unwrap_or_default()
    }

    // -- Waiting calls. Each has a non-blocking `try_*` form and a blocking form that is
    // -- `wait::wait_for` around it; the bindings run that same loop with Ctrl-C checks.

    /// Queues 24 kHz mono 16-bit model audio for playback if the ring has room for all of it
    /// now; else takes nothing and says how much playback time is missing. While the real
    /// device is lost nothing is queued (not into a ring nobody plays). Never waits.
    ///
    /// # Errors
    /// [`EngineError::ChunkTooLarge`] if it can never fit, [`EngineError::Closed`] when
    /// stopped, [`EngineError::InvalidInput`] without an output device.
    pub fn try_play(&self, pcm: &[i16]) -> Result<Attempt<()>> {
        let session = self.running_session()?;
        let producer = session.producer.as_ref().ok_or_else(|| {
            EngineError::InvalidInput("this engine has no output device; it cannot play".into())
        })?;
        if session.lost().is_some() {
            return Ok(Attempt::Retry(frames_to_duration(
                480,
                session.params.output_rate,
            )));
        }
        let mut p = lock(producer);
        if p.try_play(pcm)? {
            return Ok(Attempt::Done(()));
        }
        let missing = p.frames_needed(pcm.len()).saturating_sub(p.free_frames());
        Ok(Attempt::Retry(frames_to_duration(
            missing,
            session.params.output_rate,
        )))
    }

    /// Queues 24 kHz mono 16-bit model audio for playback.
    ///
    /// Waits while the playback ring is too full (or the device is lost), up to `timeout`
    /// (`None` = forever). The chunk is taken whole or not at all.
    ///
    /// # Errors
    /// [`EngineError::ChunkTooLarge`] if it can never fit, [`EngineError::PlaybackFull`] on
    /// timeout (nothing taken), [`EngineError::DeviceLost`] if the device stayed lost for the
    /// whole timeout, [`EngineError::Closed`] when stopped.
    pub fn play(&self, pcm: &[i16], timeout: Option<Duration>) -> Result<()> {
        let started = Instant::now();
        wait_for(timeout, "play()", || self.try_play(pcm), no_check)?
            .ok_or_else(|| self.play_timed_out(timeout, started.elapsed()))
    }

    /// The error of a `play()` whose `timeout` (the caller's) passed after `waited`: the
    /// device was lost, or the ring stayed full.
    pub fn play_timed_out(&self, timeout: Option<Duration>, waited: Duration) -> EngineError {
        self.device_lost_error("play() queued nothing", waited)
            .unwrap_or_else(|| {
                playback_full(timeout, "the chunk was not queued (nothing was lost)")
            })
    }

    /// Marks the current turn complete if the ring has room for the resampler's tail now;
    /// else says how long to wait. Without an output device there is nothing to end.
    ///
    /// # Errors
    /// [`EngineError::Closed`] when stopped.
    pub fn try_end_turn(&self) -> Result<Attempt<()>> {
        let session = self.running_session()?;
        let Some(producer) = session.producer.as_ref() else {
            return Ok(Attempt::Done(()));
        };
        if lock(producer).try_end_turn()? {
            return Ok(Attempt::Done(()));
        }
        // The tail is a few frames: one period of playback makes room for it.
        Ok(Attempt::Retry(frames_to_duration(
            480,
            session.params.output_rate,
        )))
    }

    /// Marks the current turn complete so its tail plays without waiting for the prebuffer.
    ///
    /// # Errors
    /// [`EngineError::Closed`] when stopped; [`EngineError::PlaybackFull`] on timeout.
    pub fn end_turn(&self, timeout: Option<Duration>) -> Result<()> {
        wait_for(timeout, "end_turn()", || self.try_end_turn(), no_check)?
            .ok_or_else(|| playback_full(timeout, "end_turn() could not queue the turn's tail"))
    }

    /// Whether everything queued for playback has been played (or flushed); else how long
    /// the rest takes to play. Ends the current turn first, so audio still short of the
    /// prebuffer plays too.
    ///
    /// # Errors
    /// [`EngineError::Closed`] when stopped.
    pub fn try_drain(&self) -> Result<Attempt<()>> {
        let session = self.running_session()?;
        let Some(shared) = session.playback.as_ref() else {
            return Ok(Attempt::Done(()));
        };
        if let Attempt::Retry(wait) = self.try_end_turn()? {
            return Ok(Attempt::Retry(wait));
        }
        match shared.queued_frames() {
            0 => Ok(Attempt::Done(())),
            n => Ok(Attempt::Retry(frames_to_duration(
                usize::try_from(n).unwrap_or(usize::MAX),
                session.params.output_rate,
            ))),
        }
    }

    /// Waits until everything queued has been played by the device callback (ending the
    /// current turn first), up to `timeout`; `Ok(false)` if audio was still queued then.
    ///
    /// # Errors
    /// [`EngineError::Closed`] when stopped.
    pub fn drain(&self, timeout: Option<Duration>) -> Result<bool> {
        Ok(wait_for(timeout, "drain()", || self.try_drain(), no_check)?.is_some())
    }

    /// Flushes playback at the device's next period (after a short fade) and reports how
    /// much of the interrupted turn was heard. Audio played after this call is kept.
    ///
    /// # Errors
    /// [`EngineError::Closed`] when stopped.
    pub fn interrupt(&self) -> Result<InterruptReport> {
        let session = self.running_session()?;
        Ok(session
            .producer
            .as_ref()
            .map(|p| lock(p).interrupt())
            .unwrap_or_default())
    }

    /// The next 16 kHz mono chunk of `chunk_ms` if one is ready; else how long until it is.
    /// Never waits.
    ///
    /// # Errors
    /// [`EngineError::Closed`] when stopped; [`EngineError::InvalidInput`] without input.
    pub fn try_read(&self) -> Result<Attempt<Vec<i16>>> {
        let session = self.running_session()?;
        let reader = session.reader.as_ref().ok_or_else(|| {
            EngineError::InvalidInput("this engine has no input device; it cannot read".into())
        })?;
        if let Some(v) = &session.virtual_shared {
            v.reader_active.store(true, Relaxed);
        }
        let mut r = lock(reader);
        match r.try_read() {
            Some(chunk) => {
                // The input callback counts dropped frames; compare with the last read.
                let dropped = self.stats.capture_overflow_frames.load(Relaxed);
                let before = self.overflow_mark.swap(dropped, Relaxed);
                self.overflowed.store(dropped > before, Relaxed);
                Ok(Attempt::Done(chunk))
            }
            // Sleep until the period that completes the chunk is due, not a poll interval.
            None => Ok(Attempt::Retry(r.wait_hint())),
        }
    }

    /// Returns the next 16 kHz mono chunk of `chunk_ms`, waiting up to `timeout` (`None` =
    /// forever); `Ok(None)` on timeout.
    ///
    /// # Errors
    /// [`EngineError::Closed`] when stopped; [`EngineError::InvalidInput`] without input;
    /// [`EngineError::DeviceLost`] if the device was lost and the timeout passed.
    pub fn read(&self, timeout: Option<Duration>) -> Result<Option<Vec<i16>>> {
        let started = Instant::now();
        match wait_for(timeout, "read()", || self.try_read(), no_check)? {
            Some(chunk) => Ok(Some(chunk)),
            None => self.read_timed_out(started.elapsed()).map_or(Ok(None), Err),
        }
    }

    /// What a `read()` that got no chunk within its timeout (after `waited`) reports: the
    /// device-lost error if the device is gone (everything captured before the loss has been
    /// read by then), else `None` (a plain timeout).
    pub fn read_timed_out(&self, waited: Duration) -> Option<EngineError> {
        self.device_lost_error("read() got no audio", waited)
    }

    /// `Some(error)` while the real device is lost: `what` did not happen in `waited`.
    fn device_lost_error(&self, what: &str, waited: Duration) -> Option<EngineError> {
        let session = self.current()?;
        session.lost().map(|state| state.lost_error(what, waited))
    }

    /// Whether capture dropped audio (the reader fell behind by more than
    /// `capture_buffer_ms`) between the chunk read before the last one and the last one, so
    /// the last chunk does not follow the previous one seamlessly.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Relaxed)
    }

    /// Frames of a chunk returned by [`read`](Self::read) (16 kHz).
    pub fn chunk_frames(&self) -> usize {
        (16 * self.config.chunk_ms) as usize
    }

    /// Drops captured audio that has not been read yet.
    pub fn clear_capture(&self) -> Result<()> {
        let session = self.running_session()?;
        if let Some(r) = &session.reader {
            lock(r).clear();
        }
        Ok(())
    }

    /// Switches echo cancellation on or off, at once if running (from the next 10 ms frame)
    /// and for later starts. It works only when both an input and an output are open; it is
    /// off until switched on.
    pub fn set_echo_cancellation(&self, enabled: bool) {
        self.echo.enabled.store(enabled, Release);
    }

    /// Whether echo cancellation is switched on.
    pub fn echo_cancellation(&self) -> bool {
        self.echo.enabled.load(Acquire)
    }

    /// Whether the running session has an echo canceller (both an input and an output).
    pub fn echo_available(&self) -> bool {
        self.current()
            .and_then(|s| s.reader.as_ref().map(|r| lock(r).echo_mut().is_some()))
            .unwrap_or(false)
    }

    /// Changes the canceller's settings (backend, noise suppression, high-pass filter), at
    /// once if running and for later starts.
    ///
    /// # Errors
    /// When the canceller cannot be reconfigured; the old settings stay.
    pub fn set_echo_options(&self, options: AecOptions) -> Result<()> {
        if let Some(session) = self.current() {
            if let Some(reader) = session.reader.as_ref() {
                if let Some(stage) = lock(reader).echo_mut() {
                    stage.set_options(options)?;
                }
            }
        }
        *lock(&self.echo_options) = options;
        Ok(())
    }

    /// The canceller's settings.
    pub fn echo_options(&self) -> AecOptions {
        *lock(&self.echo_options)
    }

    /// The echo canceller's figures (cumulative over the engine's life).
    pub fn echo_stats(&self) -> EchoStats {
        self.echo.snapshot()
    }

    /// The virtual device's recorded output (interleaved) and its channel count; empty for
    /// other backends or outputs.
    pub fn recording(&self) -> (Vec<f32>, u16) {
        let channels = match &self.config.backend {
            Backend::Virtual(v) => v.channels,
            Backend::Cpal(_) => 1,
        };
        let rec = lock(&self.last_virtual)
            .as_ref()
            .map(|v| lock(&v.recording).clone())
            .unwrap_or_default();
        (rec, channels)
    }

    /// Whether a finite virtual input has played to its end.
    pub fn input_ended(&self) -> bool {
        lock(&self.last_virtual)
            .as_ref()
            .is_some_and(|v| v.input_ended.load(Relaxed))
    }

    /// A snapshot of every counter. Cheap; callable from any thread at any time, also after
    /// [`stop`](Self::stop) (then with the rates of the last run and nothing buffered).
    pub fn stats(&self) -> Stats {
        let s = &self.stats;
        let session = self.current();
        let params = session
            .as_ref()
            .map_or_else(|| *lock(&self.last_params), |x| x.params);
        let out_rate = f64::from(params.output_rate.max(1));
        let in_rate = f64::from(params.input_rate.max(1));
        let frames_ms = |frames: u64, rate: f64| frames as f64 * 1000.0 / rate;
        let echo = self.echo.snapshot();
        let (playback_buffered_frames, turn) = session
            .as_ref()
            .and_then(|x| x.producer.as_ref().zip(x.playback.as_ref()))
            .map(|(p, shared)| {
                let turn = p.try_lock().map(|p| p.turn_progress()).unwrap_or_default();
                (shared.buffered_frames(), turn)
            })
            .unwrap_or_default();
        let playback_buffered_ms = frames_ms(playback_buffered_frames, out_rate);
        let capture_buffered_ms = session
            .as_ref()
            .and_then(|x| x.reader.as_ref())
            .and_then(|r| r.try_lock().ok().map(|r| r.queued_frames() as u64))
            .map_or(0.0, |f| frames_ms(f, in_rate));
        let ot = &s.output_timing;
        let it = &s.input_timing;
        let dev = self.device_status();
        Stats {
            input_rate_hz: params.input_rate,
            output_rate_hz: params.output_rate,
            input_channels: params.input_channels,
            output_channels: params.output_channels,
            // The period the device really delivers, once it has run; else the one asked for.
            period_frames: match s.output_timing.last_frames.load(Relaxed) {
                0 => match s.input_timing.last_frames.load(Relaxed) {
                    0 => params.period_frames,
                    n => n,
                },
                n => n,
            },
            frames_captured: s.frames_captured.load(Relaxed),
            capture_overflows: s.capture_overflows.load(Relaxed),
            capture_overflow_frames: s.capture_overflow_frames.load(Relaxed),
            nonfinite_samples: s.nonfinite_samples.load(Relaxed),
            chunks_read: s.chunks_read.load(Relaxed),
            frames_played: s.frames_played.load(Relaxed),
            frames_rendered: s.frames_rendered.load(Relaxed),
            underruns: s.underruns.load(Relaxed),
            underrun_silence_ms: frames_ms(s.underrun_silence_frames.load(Relaxed), out_rate),
            flushes: s.flushes.load(Relaxed),
            flushed_ms: frames_ms(s.flushed_frames.load(Relaxed), out_rate),
            frames_pushed: s.frames_pushed.load(Relaxed),
            frames_flushed: s.flushed_frames.load(Relaxed),
            playback_buffered_frames,
            output_callbacks: ot.callbacks.load(Relaxed),
            input_callbacks: it.callbacks.load(Relaxed),
            callback_p50_us: ot.duration.quantile_ns(0.5) / 1e3,
            callback_p99_us: ot.duration.quantile_ns(0.99) / 1e3,
            callback_max_us: ot.duration.max_ns() as f64 / 1e3,
            input_callback_p99_us: it.duration.quantile_ns(0.99) / 1e3,
            input_callback_max_us: it.duration.max_ns() as f64 / 1e3,
            jitter_p99_ms: ot.interval_jitter.quantile_ns(0.99) / 1e6,
            jitter_max_ms: ot.interval_jitter.max_ns() as f64 / 1e6,
            input_jitter_p99_ms: it.interval_jitter.quantile_ns(0.99) / 1e6,
            input_jitter_max_ms: it.interval_jitter.max_ns() as f64 / 1e6,
            playback_buffered_ms,
            capture_buffered_ms,
            input_rms_dbfs: to_dbfs(s.input_rms.load()),
            input_peak_dbfs: to_dbfs(s.input_peak.load()),
            output_rms_dbfs: to_dbfs(s.output_rms.load()),
            output_peak_dbfs: to_dbfs(s.output_peak.load()),
            device_errors: s.device_errors.load(Relaxed),
            device_error_callbacks: s.device_error_callbacks.load(Relaxed),
            last_device_error: device_error_name(s.last_device_error.load(Relaxed)).to_string(),
            turn_played_ms: turn.heard_ms(),
            turn_received_ms: turn.received_ms(),
            input_ended: self.input_ended(),
            // On, and a canceller exists (it needs both an input and an output).
            echo_cancellation: echo.enabled && !echo.backend.is_empty(),
            echo_backend: echo.backend,
            echo_frames: echo.frames_processed,
            echo_erle_db: echo.erle_db.unwrap_or(0.0),
            echo_delay_ms: echo.delay_ms.unwrap_or(0.0),
            echo_reference_late: echo.reference_late_frames,
            echo_reference_dropped: echo.reference_dropped_frames,
            echo_realignments: echo.realignments,
            echo_errors: echo.errors,
            echo_cost_mean_us: echo.cost_mean_us,
            echo_cost_p99_us: echo.cost_p99_us,
            echo_cost_max_us: echo.cost_max_us,
            device_state: dev.state,
            device_lost_reason: dev.lost_reason,
            device_losses: dev.losses,
            device_restores: dev.restores,
            latency_requested_ms: dev.latency_requested_ms,
            output_period_frames: dev.output_period_frames,
            input_period_frames: dev.input_period_frames,
            output_delay_ms: dev.output_delay_ms,
            input_delay_ms: dev.input_delay_ms,
            output_device_underruns: dev.output_device_underruns,
            output_device_underrun_ms: dev.output_device_underrun_ms,
            input_device_overruns: dev.input_device_overruns,
            input_device_overrun_ms: dev.input_device_overrun_ms,
            output_backend_xruns: dev.output_backend_xruns,
            input_backend_xruns: dev.input_backend_xruns,
            output_thread: dev.output_thread,
            input_thread: dev.input_thread,
            jitter_buffer_ms: frames_ms(s.jitter_buffer_frames.load(Relaxed), out_rate),
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Sample rate of model audio given to [`Engine::play`].
pub const PLAY_RATE_HZ: u32 = MODEL_RATE_HZ;
