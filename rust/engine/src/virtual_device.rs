//! A clock-driven device with no sound card: input from a WAV file, samples, a tone or
//! silence (optionally plus a delayed loopback of its own output, an echo path), output to a
//! WAV file or memory; real-time pace, any speed-up, or as fast as the reader allows.
//!
//! The device thread plays the part of the sound card: it calls the same callback bodies
//! cpal would, at the same period. Its own file and memory writes happen on a separate sink
//! thread, fed through an SPSC ring, so the device thread stays lock- and allocation-free.

use std::path::PathBuf;
use std::sync::atomic::{
    AtomicBool, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::callback::{InputCallback, OutputCallback};
use crate::error::{EngineError, Result};
use crate::wav::{
    create_wav_writer, f32_sample_to_i16, read_wav_mono, resample_all, wav_write_error,
};

/// Where the virtual device's input comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum VirtualInput {
    /// Digital silence.
    Silence,
    /// A sine tone.
    Tone {
        /// Frequency in Hz.
        freq_hz: f32,
        /// Linear amplitude (1.0 = full scale).
        amplitude: f32,
    },
    /// Mono samples in [-1, 1] at `rate_hz` (resampled to the device rate if needed).
    Samples {
        /// The samples.
        samples: Vec<f32>,
        /// Their sample rate.
        rate_hz: u32,
    },
    /// A WAV file (16/24/32-bit PCM or 32-bit float, any rate and channel count).
    Wav(PathBuf),
}

/// Where the virtual device's output goes.
#[derive(Debug, Clone, PartialEq)]
pub enum VirtualOutput {
    /// Thrown away.
    Discard,
    /// Kept in memory; read it with [`crate::Engine::recording`].
    Memory,
    /// Written to a 16-bit WAV file at the device rate and channel count.
    Wav(PathBuf),
}

/// Settings of the virtual device.
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualConfig {
    /// Device sample rate in Hz.
    pub sample_rate: u32,
    /// Channels of both input and output.
    pub channels: u16,
    /// Frames per period (per callback).
    pub period_frames: u32,
    /// Input source.
    pub input: VirtualInput,
    /// Repeat a finite input instead of going silent at its end.
    pub input_loop: bool,
    /// Echo path: the output is added to the input after this delay (at least one period).
    pub loopback_delay_ms: Option<f64>,
    /// Gain of the echo path.
    pub loopback_gain: f32,
    /// Output sink.
    pub output: VirtualOutput,
    /// 1.0 = real time, 10.0 = ten times faster, 0.0 = as fast as possible.
    pub speed: f64,
    /// Clock error of the simulated device, parts per million (positive = slow clock).
    pub clock_skew_ppm: f64,
    /// Every this many periods the device thread misses its deadline by `stall_ms`.
    pub stall_every_periods: u32,
    /// How late a missed deadline is, in milliseconds.
    pub stall_ms: f64,
}

impl Default for VirtualConfig {
    fn default() -> Self {
        Self {
            sample_rate: 48_000,
            channels: 1,
            period_frames: 480,
            input: VirtualInput::Silence,
            input_loop: false,
            loopback_delay_ms: None,
            loopback_gain: 1.0,
            output: VirtualOutput::Memory,
            speed: 1.0,
            clock_skew_ppm: 0.0,
            stall_every_periods: 0,
            stall_ms: 0.0,
        }
    }
}

impl VirtualConfig {
    /// Checks the settings and loads the input at the device rate.
    ///
    /// # Errors
    /// [`EngineError::InvalidInput`] for unusable numbers, [`EngineError::Wav`] for a bad file.
    pub fn prepare_input(&self) -> Result<PreparedInput> {
        if !(8_000..=384_000).contains(&self.sample_rate) {
            return Err(EngineError::InvalidInput(format!(
                "virtual device sample_rate {} Hz is not supported; use 8000..=384000 (e.g. 48000)",
                self.sample_rate
            )));
        }
        if self.channels == 0 || self.channels > 32 {
            return Err(EngineError::InvalidInput(format!(
                "virtual device channels must be 1..=32, got {}",
                self.channels
            )));
        }
        let max_period = crate::callback::MAX_BLOCK_FRAMES as u32;
        if self.period_frames < 16 || self.period_frames > max_period {
            return Err(EngineError::InvalidInput(format!(
                "period of {} frames is not supported; use 16..={max_period} (480 = 10 ms at 48 kHz)",
                self.period_frames
            )));
        }
        if !(self.speed >= 0.0 && self.speed.is_finite()) {
            return Err(EngineError::InvalidInput(format!(
                "speed must be 0 (as fast as possible) or a positive factor, got {}",
                self.speed
            )));
        }
        let rate = self.sample_rate;
        Ok(match &self.input {
            VirtualInput::Silence => PreparedInput::Silence,
            VirtualInput::Tone { freq_hz, amplitude } => {
                if !(*freq_hz > 0.0 && *freq_hz < rate as f32 / 2.0) {
                    return Err(EngineError::InvalidInput(format!(
                        "tone frequency {freq_hz} Hz must be between 0 and half the sample rate ({} Hz)",
                        rate / 2
                    )));
                }
                PreparedInput::Tone {
                    phase_step: 2.0 * std::f64::consts::PI * f64::from(*freq_hz) / f64::from(rate),
                    amplitude: *amplitude,
                }
            }
            VirtualInput::Samples { samples, rate_hz } => {
                PreparedInput::Clip(resample_all(samples, *rate_hz, rate)?)
            }
            VirtualInput::Wav(path) => PreparedInput::Clip(read_wav_mono(path, rate)?),
        })
    }
}

/// The input source, loaded and at the device rate.
#[derive(Debug)]
pub enum PreparedInput {
    /// Silence.
    Silence,
    /// A sine generator.
    Tone {
        /// Radians per frame.
        phase_step: f64,
        /// Linear amplitude.
        amplitude: f32,
    },
    /// A finite clip.
    Clip(Vec<f32>),
}

/// State the virtual device shares with the engine.
#[derive(Debug, Default)]
pub struct VirtualShared {
    stop: AtomicBool,
    /// Set once a reader has taken a chunk; from then on an as-fast-as-possible device waits
    /// for the reader instead of overflowing the capture ring (with a finite input it always
    /// waits).
    pub reader_active: AtomicBool,
    /// Set when a finite, non-looping input has been played to its end.
    pub input_ended: AtomicBool,
    /// Periods the device has run.
    pub periods: AtomicU64,
    /// Output frames the sink could not take in real-time mode.
    pub sink_dropped_frames: AtomicU64,
    /// Interleaved output kept for `VirtualOutput::Memory`.
    pub recording: Mutex<Vec<f32>>,
}

/// A running virtual device; stop it with [`VirtualDevice::stop`] or by dropping it.
#[derive(Debug)]
pub struct VirtualDevice {
    shared: Arc<VirtualShared>,
    device_thread: Option<JoinHandle<()>>,
    sink_thread: Option<JoinHandle<Result<()>>>,
}

impl VirtualDevice {
    /// Starts the device thread (and the sink thread) with the given callbacks.
    ///
    /// # Errors
    /// [`EngineError::Wav`] when the output WAV file cannot be created.
    pub fn start(
        config: &VirtualConfig,
        input: PreparedInput,
        input_cb: InputCallback,
        output_cb: OutputCallback,
        shared: Arc<VirtualShared>,
    ) -> Result<Self> {
        let channels = usize::from(config.channels);
        let period = config.period_frames as usize;
        // A few seconds of slack between the device clock and the file or memory sink.
        let sink_capacity = (config.sample_rate as usize * channels * 4).max(period * channels * 8);
        let (sink_tx, sink_rx) = rtrb::RingBuffer::<f32>::new(sink_capacity);
        let mut wav = match &config.output {
            VirtualOutput::Wav(path) => Some((
                create_wav_writer(path, config.sample_rate, config.channels)?,
                path.clone(),
            )),
            _ => None,
        };
        let keep_in_memory = config.output == VirtualOutput::Memory;
        let discard = config.output == VirtualOutput::Discard;
        let sink_shared = Arc::clone(&shared);
        let sink_thread = (!discard)
            .then(|| {
                std::thread::Builder::new()
                    .name("duplex-virtual-sink".into())
                    .spawn(move || -> Result<()> {
                        let mut rx = sink_rx;
                        loop {
                            let stopping = sink_shared.stop.load(Acquire);
                            let n = rx.slots();
                            if n > 0 {
                                let chunk = rx.read_chunk(n).expect("n slots are readable");
                                let (a, b) = chunk.as_slices();
                                if keep_in_memory {
                                    let mut rec =
                                        sink_shared.recording.lock().expect("recording lock");
                                    rec.extend_from_slice(a);
                                    rec.extend_from_slice(b);
                                }
                                if let Some((writer, path)) = wav.as_mut() {
                                    for &s in a.iter().chain(b) {
                                        writer
                                            .write_sample(f32_sample_to_i16(s))
                                            .map_err(|e| wav_write_error(path, &e))?;
                                    }
                                }
                                chunk.commit_all();
                            } else if stopping && rx.is_abandoned() {
                                break;
                            } else {
                                std::thread::sleep(Duration::from_millis(5));
                            }
                        }
                        if let Some((writer, path)) = wav {
                            writer.finalize().map_err(|e| wav_write_error(&path, &e))?;
                        }
                        Ok(())
                    })
                    .map_err(|e| {
                        EngineError::Device(format!("cannot start the virtual sink thread: {e}"))
                    })
            })
            .transpose()?;

        let runner = DeviceLoop::new(
            config,
            input,
            input_cb,
            output_cb,
            (!discard).then_some(sink_tx),
            Arc::clone(&shared),
        );
        let device_thread = std::thread::Builder::new()
            .name("duplex-virtual-device".into())
            .spawn(move || runner.run())
            .map_err(|e| {
                EngineError::Device(format!("cannot start the virtual device thread: {e}"))
            })?;
        Ok(Self {
            shared,
            device_thread: Some(device_thread),
            sink_thread,
        })
    }

    /// Stops the clock, waits for the sink to write everything out and closes the WAV file.
    ///
    /// # Errors
    /// [`EngineError::Wav`] if writing the output file failed.
    pub fn stop(&mut self) -> Result<()> {
        self.shared.stop.store(true, Release);
        if let Some(t) = self.device_thread.take() {
            let _ = t.join();
        }
        match self.sink_thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| {
                Err(EngineError::Wav("the virtual sink thread panicked".into()))
            }),
            None => Ok(()),
        }
    }
}

impl Drop for VirtualDevice {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The device thread's state: everything allocated before the first period.
struct DeviceLoop {
    channels: usize,
    period: usize,
    speed: f64,
    period_ns: f64,
    stall_every: u64,
    stall: Duration,
    input: PreparedInput,
    input_loop: bool,
    input_pos: usize,
    tone_phase: f64,
    loopback_gain: f32,
    history: Vec<f32>,
    history_pos: usize,
    in_buf: Vec<f32>,
    out_buf: Vec<f32>,
    input_cb: InputCallback,
    output_cb: OutputCallback,
    /// `None` when the output is discarded: no sink thread, nothing to send.
    sink: Option<rtrb::Producer<f32>>,
    shared: Arc<VirtualShared>,
}

impl DeviceLoop {
    fn new(
        config: &VirtualConfig,
        input: PreparedInput,
        input_cb: InputCallback,
        output_cb: OutputCallback,
        sink: Option<rtrb::Producer<f32>>,
        shared: Arc<VirtualShared>,
    ) -> Self {
        let channels = usize::from(config.channels);
        let period = config.period_frames as usize;
        let history_len = config
            .loopback_delay_ms
            .map(|ms| ((ms / 1000.0 * f64::from(config.sample_rate)).round() as usize).max(period))
            .unwrap_or(0);
        Self {
            channels,
            period,
            speed: config.speed,
            period_ns: period as f64 * 1e9 / f64::from(config.sample_rate)
                * (1.0 + config.clock_skew_ppm * 1e-6),
            stall_every: u64::from(config.stall_every_periods),
            stall: Duration::from_secs_f64(config.stall_ms.max(0.0) / 1000.0),
            input,
            input_loop: config.input_loop,
            input_pos: 0,
            tone_phase: 0.0,
            loopback_gain: config.loopback_gain,
            history: vec![0.0; history_len],
            history_pos: 0,
            in_buf: vec![0.0; period * channels],
            out_buf: vec![0.0; period * channels],
            input_cb,
            output_cb,
            sink,
            shared,
        }
    }

    fn next_source_sample(&mut self) -> f32 {
        match &self.input {
            PreparedInput::Silence => 0.0,
            PreparedInput::Tone {
                phase_step,
                amplitude,
            } => {
                let s = amplitude * self.tone_phase.sin() as f32;
                self.tone_phase = (self.tone_phase + phase_step) % (2.0 * std::f64::consts::PI);
                s
            }
            PreparedInput::Clip(clip) => {
                if self.input_pos >= clip.len() {
                    if self.input_loop && !clip.is_empty() {
                        self.input_pos = 0;
                    } else {
                        self.shared.input_ended.store(true, Relaxed);
                        return 0.0;
                    }
                }
                self.input_pos += 1;
                clip[self.input_pos - 1]
            }
        }
    }

    fn fill_input(&mut self) {
        let history_len = self.history.len();
        for f in 0..self.period {
            let mut s = self.next_source_sample();
            if history_len > 0 {
                s += self.loopback_gain * self.history[(self.history_pos + f) % history_len];
            }
            let frame = &mut self.in_buf[f * self.channels..(f + 1) * self.channels];
            frame.fill(s);
        }
    }

    fn record_history(&mut self) {
        let history_len = self.history.len();
        if history_len == 0 {
            return;
        }
        for f in 0..self.period {
            self.history[(self.history_pos + f) % history_len] = self.out_buf[f * self.channels];
        }
        self.history_pos = (self.history_pos + self.period) % history_len;
    }

    fn run(mut self) {
        let start = Instant::now();
        let mut periods: u64 = 0;
        let mut late_by = Duration::ZERO;
        while !self.shared.stop.load(Acquire) {
            self.fill_input();
            self.input_cb.process(&self.in_buf);
            self.output_cb.process(&mut self.out_buf);
            self.record_history();
            self.send_to_sink();
            periods += 1;
            self.shared.periods.store(periods, Relaxed);
            if self.speed > 0.0 {
                if self.stall_every > 0 && periods % self.stall_every == 0 {
                    late_by += self.stall;
                }
                let due = start
                    + Duration::from_nanos((periods as f64 * self.period_ns / self.speed) as u64)
                    + late_by;
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            } else {
                self.wait_for_reader();
            }
        }
    }

    /// As fast as possible, but never faster than the reader takes the audio away: always
    /// for a finite input (a WAV or samples are never lost), otherwise once something reads.
    fn wait_for_reader(&self) {
        let finite_input = matches!(self.input, PreparedInput::Clip(_));
        while (finite_input || self.shared.reader_active.load(Relaxed))
            && self.input_cb.free_frames() < self.period
            && !self.shared.stop.load(Acquire)
        {
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    fn send_to_sink(&mut self) {
        let Some(sink) = self.sink.as_mut() else {
            return;
        };
        let mut rest: &[f32] = &self.out_buf;
        loop {
            let (_, left) = sink.push_partial_slice(rest);
            if left.is_empty() {
                return;
            }
            if self.speed > 0.0 || self.shared.stop.load(Acquire) {
                // A real clock cannot wait for a slow disk: count what was lost.
                self.shared
                    .sink_dropped_frames
                    .fetch_add((left.len() / self.channels) as u64, Relaxed);
                return;
            }
            rest = left;
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}
