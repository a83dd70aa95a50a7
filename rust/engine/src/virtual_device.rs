//! A clock-driven device with no sound card: input from a WAV file, samples, a tone or
//! silence (optionally plus a delayed loopback of its own output, an echo path), output to a
//! WAV file or memory; real-time pace, any speed-up, or as fast as the reader allows.
//!
//! The device thread plays the part of the sound card: it calls the same callback bodies
//! cpal would, at the same period. Its own file and memory writes happen on a separate sink
//! thread, fed through an SPSC ring, so the device thread stays lock- and allocation-free.

use std::sync::atomic::{
    AtomicBool, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::callback::{InputCallback, OutputCallback};
use crate::error::{EngineError, Result};
pub use crate::virtual_config::{PreparedInput, VirtualConfig, VirtualInput, VirtualOutput};
use crate::wav::{create_wav_writer, f32_sample_to_i16, wav_write_error};

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
    /// [`EngineError::InvalidInput`] for settings out of range,
    /// [`EngineError::Wav`] when the output WAV file cannot be created.
    pub fn start(
        config: &VirtualConfig,
        input: PreparedInput,
        input_cb: InputCallback,
        output_cb: OutputCallback,
        shared: Arc<VirtualShared>,
    ) -> Result<Self> {
        config.validate()?;
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
            // The clock sleeps in `park_timeout`: wake it so stop() never waits out a period,
            // however slow, skewed or stalled the simulated clock is.
            t.thread().unpark();
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
    overrun_every: u32,
    underrun_every: u32,
    xrun_periods: u32,
    /// Nanoseconds of device time per frame (the stamps both callbacks get).
    frame_ns: f64,
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
        let history_len = config.loopback_history_frames();
        Self {
            channels,
            period,
            speed: config.speed,
            period_ns: period as f64 * 1e9 / f64::from(config.sample_rate)
                * (1.0 + config.clock_skew_ppm * 1e-6),
            stall_every: u64::from(config.stall_every_periods),
            stall: Duration::try_from_secs_f64(config.stall_ms / 1000.0).unwrap_or_default(),
            overrun_every: config.overrun_every_periods,
            underrun_every: config.underrun_every_periods,
            xrun_periods: config.xrun_periods,
            frame_ns: 1e9 / f64::from(config.sample_rate),
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
            PreparedInput::Clip { samples: clip, .. } => {
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
            // Both directions run on this one clock: each callback is stamped with the
            // device time of its period, as a sound card's timestamps would.
            let now_ns = (periods as f64 * self.period as f64 * self.frame_ns) as u64;
            self.fill_input();
            if !VirtualConfig::xrun_lost(periods, self.overrun_every, self.xrun_periods) {
                self.input_cb.stamp(now_ns);
                self.input_cb.process(&self.in_buf);
            }
            if VirtualConfig::xrun_lost(periods, self.underrun_every, self.xrun_periods) {
                self.out_buf.fill(0.0);
            } else {
                self.output_cb.stamp(now_ns, true);
                self.output_cb.process(&mut self.out_buf);
            }
            self.record_history();
            self.send_to_sink();
            periods += 1;
            self.shared.periods.store(periods, Relaxed);
            if self.speed > 0.0 {
                if self.stall_every > 0 && periods % self.stall_every == 0 {
                    late_by += self.stall;
                }
                let elapsed =
                    Duration::from_nanos((periods as f64 * self.period_ns / self.speed) as u64);
                self.sleep_until(start, elapsed + late_by);
            } else {
                self.wait_for_reader();
            }
        }
    }

    /// Sleeps until `start + offset`, waking at once when the device is stopped
    /// ([`VirtualDevice::stop`] unparks this thread). A far-off deadline (an offset that
    /// does not fit an `Instant`) is treated as "until stopped".
    fn sleep_until(&self, start: Instant, offset: Duration) {
        let due = start.checked_add(offset);
        while !self.shared.stop.load(Acquire) {
            let now = Instant::now();
            let wait = match due {
                Some(due) if due <= now => return,
                Some(due) => due - now,
                None => Duration::from_secs(3600),
            };
            // May wake early (spuriously or by unpark); the loop re-checks both conditions.
            std::thread::park_timeout(wait);
        }
    }

    /// As fast as possible, but never faster than the reader takes the audio away: always
    /// for a finite input (a WAV or samples are never lost), otherwise once something reads.
    fn wait_for_reader(&self) {
        let finite_input = matches!(self.input, PreparedInput::Clip { .. });
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
