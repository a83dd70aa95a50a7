//! Running cpal streams around callbacks that outlive them.
//!
//! The engine's callbacks (and through them the playback and capture rings) live in
//! [`CallbackSlots`], not inside a cpal stream, so that a dead stream can be replaced by a
//! new one that carries on with the same rings: queued playback continues, captured audio
//! stays readable. Each stream is built for one *generation*; a stream whose generation is
//! no longer current writes silence and touches nothing (it may still be shutting down
//! while its successor runs).
//!
//! **The closures built here run on cpal's device threads in real time.** Per callback they
//! read the generation, tick a [`FrameClock`], and `try_lock` the slot: a lock that is never
//! waited for (only the current stream's device thread ever takes it, so it is always free;
//! if it were not, the callback writes silence instead of waiting). No allocation, no
//! logging. The first callback of a stream also promotes its thread (one system call).

use std::sync::atomic::{AtomicU64, Ordering::Acquire, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, StreamTrait};
use cpal::{BufferSize, FromSample, SampleFormat, SizedSample, StreamConfig};

use crate::callback::{InputCallback, OutputCallback};
use crate::cpal_device::{device_error_counter, ResolvedDevice};
use crate::device_health::{DeviceHealth, DirectionHealth, FrameClock, RtStatus};
use crate::error::{EngineError, Result};
use crate::rt_priority;
use crate::stats::SharedStats;

/// The engine's callbacks, shared by every stream generation of one engine session.
#[derive(Debug)]
pub struct CallbackSlots {
    /// The output callback (playback ring inside), if there is an output.
    pub output: Option<Mutex<OutputCallback>>,
    /// The input callback (capture ring inside), if there is an input.
    pub input: Option<Mutex<InputCallback>>,
    /// The generation allowed to use the callbacks.
    generation: AtomicU64,
    /// Ask the device threads to promote themselves to real-time priority.
    pub realtime: bool,
    /// Where time is measured from (nanosecond stamps of the frame clocks).
    epoch: Instant,
}

impl CallbackSlots {
    /// Slots holding these callbacks; no generation is current yet.
    pub fn new(
        output: Option<OutputCallback>,
        input: Option<InputCallback>,
        realtime: bool,
    ) -> Self {
        Self {
            output: output.map(Mutex::new),
            input: input.map(Mutex::new),
            generation: AtomicU64::new(0),
            realtime,
            epoch: Instant::now(),
        }
    }

    /// Makes `generation` the only one allowed to run the callbacks.
    pub fn set_generation(&self, generation: u64) {
        self.generation
            .store(generation, std::sync::atomic::Ordering::Release);
    }

    /// The generation allowed to run the callbacks.
    pub(crate) fn current(&self) -> u64 {
        self.generation.load(Acquire)
    }

    /// Nanoseconds since the slots were made (the frame clocks' time base).
    pub(crate) fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// What a stream generation was granted by the host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Granted {
    /// Device id of the output (empty without output).
    pub output_device: String,
    /// Device id of the input (empty without input).
    pub input_device: String,
    /// Frames per period the output really runs at (read back from the host).
    pub output_period_frames: u32,
    /// Frames per period the input really runs at.
    pub input_period_frames: u32,
    /// Device buffer asked for, in frames (cpal asks for two periods).
    pub buffer_frames_requested: u32,
    /// Device buffer the host granted, in frames (the native PulseAudio host reads back
    /// the server's tlength; 0 where the host does not say).
    pub buffer_frames_granted: u32,
    /// The host the streams run on: `"alsa"` or `"pulse"`.
    pub host: &'static str,
}

/// Running cpal streams of one generation; dropping them stops their device threads.
pub struct CpalStreams {
    streams: Vec<cpal::Stream>,
    /// Streams of the engine's own hosts (`crate::pulse`); dropping one stops its thread.
    native: Vec<Box<dyn Send>>,
    /// What the host granted.
    pub granted: Granted,
    /// The generation these streams run as.
    pub generation: u64,
}

impl std::fmt::Debug for CpalStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpalStreams")
            .field("granted", &self.granted)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl CpalStreams {
    /// Streams of a host of the engine's own, behind the same interface: `handle` stops its
    /// device thread when dropped.
    pub fn native(handle: Box<dyn Send>, granted: Granted, generation: u64) -> Self {
        Self {
            streams: Vec::new(),
            native: vec![handle],
            granted,
            generation,
        }
    }

    /// Takes the streams out, to drop them elsewhere (a native stream's thread goes with
    /// them).
    pub fn into_streams(self) -> (Vec<cpal::Stream>, Vec<Box<dyn Send>>) {
        (self.streams, self.native)
    }
}

pub use crate::device_health::{StormThrottle, STORM_ERRORS, STORM_SLEEP, STORM_WINDOW};

/// The error callback of one stream. Runs on the device thread: counts (atomics only),
/// flags a disconnect, and throttles an error storm by sleeping (the only wait in a device
/// thread, and only on a stream that no longer delivers audio: see [`StormThrottle`]).
pub fn error_handler(
    stats: Arc<SharedStats>,
    health: Arc<DeviceHealth>,
    slots: Arc<CallbackSlots>,
    input: bool,
    generation: u64,
) -> impl FnMut(cpal::Error) + Send + 'static {
    let mut count_episode = device_error_counter(stats);
    let mut throttle = StormThrottle::default();
    move |err: cpal::Error| {
        let dir: &DirectionHealth = if input { &health.input } else { &health.output };
        dir.error_callbacks.fetch_add(1, Relaxed);
        let stale = slots.current() != generation;
        if !stale {
            match err.kind() {
                cpal::ErrorKind::Xrun => {
                    dir.backend_xruns.fetch_add(1, Relaxed);
                }
                cpal::ErrorKind::DeviceNotAvailable => dir.not_available.store(true, Relaxed),
                _ => {}
            }
            // The pulse plugin without its server fails the poll itself; a stream that is
            // recovering from an xrun fails later calls. (`contains` does not allocate.)
            if err
                .message()
                .is_some_and(|m| m.contains("snd_pcm_poll_descriptors_revents"))
            {
                dir.poll_errors.fetch_add(1, Relaxed);
            }
            count_episode(&err);
        }
        if throttle.on_error(slots.now_ns(), dir.callbacks.load(Relaxed)) || stale {
            std::thread::sleep(STORM_SLEEP);
        }
    }
}

fn promote_once(slots: &CallbackSlots, dir: &DirectionHealth, done: &mut bool) {
    if !*done {
        *done = true;
        let status = if slots.realtime {
            rt_priority::promote_current_thread()
        } else {
            RtStatus::Off
        };
        dir.rt.store(status as u8, Relaxed);
    }
}

fn frames_of(d: Duration, rate: u32) -> f64 {
    d.as_secs_f64() * f64::from(rate)
}

/// The start of every data callback: `None` in a stream of an older generation (one still
/// shutting down after a rebuild, which must stay quiet); else promotes the thread on its
/// first call, counts the callback, and returns the time now. **Real time.**
#[inline]
fn enter(
    slots: &CallbackSlots,
    dir: &DirectionHealth,
    generation: u64,
    promoted: &mut bool,
) -> Option<u64> {
    if slots.current() != generation {
        return None;
    }
    promote_once(slots, dir, promoted);
    dir.callbacks.fetch_add(1, Relaxed);
    Some(slots.now_ns())
}

fn build_output_typed<T>(
    dev: &ResolvedDevice,
    config: StreamConfig,
    slots: &Arc<CallbackSlots>,
    health: &Arc<DeviceHealth>,
    generation: u64,
    errors: impl FnMut(cpal::Error) + Send + 'static,
) -> std::result::Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + FromSample<f32> + Send + 'static,
{
    let slots_cb = Arc::clone(slots);
    let health_cb = Arc::clone(health);
    let channels = usize::from(config.channels.max(1));
    let rate = config.sample_rate;
    let mut clock = FrameClock::new(rate, dev.buffer_frames());
    let mut promoted = false;
    let data = move |data: &mut [T], info: &cpal::OutputCallbackInfo| {
        let slots = &*slots_cb;
        let dir = &health_cb.output;
        let Some(now_ns) = enter(slots, dir, generation, &mut promoted) else {
            data.fill(T::EQUILIBRIUM);
            return;
        };
        let ts = info.timestamp();
        let delay = ts.playback.checked_duration_since(ts.callback);
        clock.output(
            now_ns,
            delay.map(|d| frames_of(d, rate)),
            data.len() / channels,
            dir,
        );
        match slots.output.as_ref().map(Mutex::try_lock) {
            Some(Ok(mut cb)) => {
                // When this buffer meets the speaker, on the clock the input stamps with:
                // it pairs the echo canceller's reference with the capture across glitches.
                if let Some(d) = delay {
                    cb.stamp(now_ns.saturating_add(d.as_nanos() as u64), false);
                }
                cb.process(data)
            }
            _ => data.fill(T::EQUILIBRIUM),
        }
    };
    dev.device().build_output_stream(config, data, errors, None)
}

fn build_input_typed<T>(
    dev: &ResolvedDevice,
    config: StreamConfig,
    slots: &Arc<CallbackSlots>,
    health: &Arc<DeviceHealth>,
    generation: u64,
    errors: impl FnMut(cpal::Error) + Send + 'static,
) -> std::result::Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + Send + 'static,
    f32: FromSample<T>,
{
    let slots_cb = Arc::clone(slots);
    let health_cb = Arc::clone(health);
    let channels = usize::from(config.channels.max(1));
    let rate = config.sample_rate;
    let mut clock = FrameClock::new(rate, dev.buffer_frames());
    let mut promoted = false;
    let data = move |data: &[T], info: &cpal::InputCallbackInfo| {
        let slots = &*slots_cb;
        let dir = &health_cb.input;
        let Some(now_ns) = enter(slots, dir, generation, &mut promoted) else {
            return;
        };
        let ts = info.timestamp();
        let delay = ts.callback.checked_duration_since(ts.capture);
        clock.input(
            now_ns,
            delay.map(|d| frames_of(d, rate)),
            data.len() / channels,
            dir,
        );
        if let Some(Ok(mut cb)) = slots.input.as_ref().map(Mutex::try_lock) {
            // When the microphone captured this buffer (see the output side).
            if let Some(d) = delay {
                cb.stamp(now_ns.saturating_sub(d.as_nanos() as u64));
            }
            cb.process(data);
        }
    };
    dev.device().build_input_stream(config, data, errors, None)
}

macro_rules! dispatch_format {
    ($format:expr, $f:ident, $($args:expr),*) => {
        match $format {
            SampleFormat::F32 => $f::<f32>($($args),*),
            SampleFormat::I16 => $f::<i16>($($args),*),
            SampleFormat::I32 => $f::<i32>($($args),*),
            SampleFormat::I24 => $f::<cpal::I24>($($args),*),
            SampleFormat::U16 => $f::<u16>($($args),*),
            SampleFormat::U8 => $f::<u8>($($args),*),
            SampleFormat::I8 => $f::<i8>($($args),*),
            SampleFormat::F64 => $f::<f64>($($args),*),
            other => return Err(format!("sample format {other} is not supported")),
        }
    };
}

fn open_err(dev: &ResolvedDevice, what: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Device(format!("cannot open {what} device '{}': {e}", dev.id()))
}

fn build_one(
    dev: &ResolvedDevice,
    input: bool,
    slots: &Arc<CallbackSlots>,
    health: &Arc<DeviceHealth>,
    stats: &Arc<SharedStats>,
    generation: u64,
) -> std::result::Result<cpal::Stream, String> {
    let config = StreamConfig {
        buffer_size: BufferSize::Fixed(dev.period_frames()),
        ..dev.stream_config()
    };
    let errors = error_handler(
        Arc::clone(stats),
        Arc::clone(health),
        Arc::clone(slots),
        input,
        generation,
    );
    let result = if input {
        dispatch_format!(
            dev.sample_format(),
            build_input_typed,
            dev,
            config,
            slots,
            health,
            generation,
            errors
        )
    } else {
        dispatch_format!(
            dev.sample_format(),
            build_output_typed,
            dev,
            config,
            slots,
            health,
            generation,
            errors
        )
    };
    result.map_err(|e| e.to_string())
}

/// Builds and starts the streams of `generation` (which becomes current first, so an older
/// stream still shutting down goes quiet).
///
/// # Errors
/// [`EngineError::Device`] when a stream cannot be built or started.
pub fn start_streams(
    input: Option<&ResolvedDevice>,
    output: Option<&ResolvedDevice>,
    slots: &Arc<CallbackSlots>,
    health: &Arc<DeviceHealth>,
    stats: &Arc<SharedStats>,
    generation: u64,
) -> Result<CpalStreams> {
    slots.set_generation(generation);
    let mut streams = Vec::new();
    let mut granted = Granted {
        host: "alsa",
        ..Granted::default()
    };
    if let Some(dev) = output {
        let s = build_one(dev, false, slots, health, stats, generation)
            .map_err(|e| open_err(dev, "output", e))?;
        granted.output_device = dev.id();
        granted.output_period_frames = s.buffer_size().unwrap_or(dev.period_frames());
        granted.buffer_frames_requested = dev.buffer_frames();
        streams.push(s);
    }
    if let Some(dev) = input {
        let s = build_one(dev, true, slots, health, stats, generation)
            .map_err(|e| open_err(dev, "input", e))?;
        granted.input_device = dev.id();
        granted.input_period_frames = s.buffer_size().unwrap_or(dev.period_frames());
        granted.buffer_frames_requested = granted.buffer_frames_requested.max(dev.buffer_frames());
        streams.push(s);
    }
    for s in &streams {
        s.play()
            .map_err(|e| EngineError::Device(format!("cannot start audio stream: {e}")))?;
    }
    Ok(CpalStreams {
        streams,
        native: Vec::new(),
        granted,
        generation,
    })
}
