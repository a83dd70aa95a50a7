//! [`Engine`]: the non-real-time facade that owns the device, the rings and the resamplers.
//!
//! Every method takes `&self` and may be called from any thread. Calls that may wait
//! ([`Engine::play`], [`Engine::read`], [`Engine::end_turn`]) hold the engine's locks only
//! for the copy or resampling of one chunk, never while they wait, so [`Engine::interrupt`]
//! always returns at once.
//!
//! This file is the public API (start/stop, play, read, interrupt, echo, events). The rest
//! is split by concern: `config.rs` (settings and their validation), `start.rs` (the seam a
//! backend starts through, and the pieces every backend shares), one file per backend
//! (`virtual_backend.rs`, `cpal_backend.rs`), and `status.rs` (device status and stats).

use std::sync::atomic::{
    AtomicBool, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use crate::aec::stage::{EchoShared, EchoStats};
use crate::aec::AecOptions;
use crate::device_health::DeviceHealth;
use crate::error::{EngineError, Result};
use crate::playback::{InterruptReport, MODEL_RATE_HZ};
use crate::stats::SharedStats;
use crate::supervisor::{DeviceEvent, DeviceState, EventLog};
use crate::virtual_device::VirtualShared;
use crate::wait::{playback_full, wait_for, Attempt};

// The public types keep their `crate::engine::` paths through the re-exports below.
mod config;
mod cpal_backend;
#[cfg(target_os = "linux")]
mod pulse_backend;
mod start;
mod status;
mod supervised;
mod virtual_backend;

pub use crate::stats::DeviceStatus;
pub use config::{Backend, EngineConfig};
pub use start::DeviceParams;
use start::Session;

/// Longest `stop()` waits for real devices to shut down. A stream whose sound server died
/// can hang in its backend for ever; it is left behind rather than hanging the caller.
pub const STOP_WAIT: Duration = Duration::from_millis(400);

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
        Self::check_backend(&config.backend)?;
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
        let session = self.start_session()?;
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
        let result = handle.map_or(Ok(()), |mut device| device.stop());
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
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Sample rate of model audio given to [`Engine::play`].
pub const PLAY_RATE_HZ: u32 = MODEL_RATE_HZ;
