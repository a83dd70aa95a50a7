//! The device callback bodies, as plain structs that tests drive without a device.
//!
//! **Everything here runs on a device thread in real time**: no allocation, no lock, no
//! blocking call, no logging. Scratch buffers are allocated in the constructors. Device
//! buffers of any size are handled in blocks of at most [`MAX_BLOCK_FRAMES`].

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use cpal::{FromSample, Sample};

use crate::aec::tap::{InputClock, ReferenceTap};
use crate::capture::CaptureWriter;
use crate::convert::{rms_and_peak, sanitize_block};
use crate::playback::PlaybackRenderer;
use crate::stats::{CallbackTiming, SharedStats};

/// Largest block the callbacks convert at once; bigger device buffers are split.
pub const MAX_BLOCK_FRAMES: usize = 4096;

/// Measures how long a callback ran and how regular its start times were.
#[derive(Debug)]
struct TimingProbe {
    rate: f64,
    last_start: Option<Instant>,
    last_frames: usize,
}

impl TimingProbe {
    fn new(rate: u32) -> Self {
        Self {
            rate: f64::from(rate),
            last_start: None,
            last_frames: 0,
        }
    }

    fn start(&mut self, timing: &CallbackTiming, frames: usize) -> Instant {
        let now = Instant::now();
        if let Some(last) = self.last_start {
            let interval_ns = now.duration_since(last).as_nanos() as f64;
            let expected_ns = self.last_frames as f64 * 1e9 / self.rate;
            timing
                .interval_jitter
                .record((interval_ns - expected_ns).abs() as u64);
        }
        self.last_start = Some(now);
        self.last_frames = frames;
        timing.callbacks.fetch_add(1, Relaxed);
        timing
            .last_frames
            .store(u32::try_from(frames).unwrap_or(u32::MAX), Relaxed);
        now
    }
}

/// Running RMS and peak over the blocks of one callback.
#[derive(Default)]
struct Level {
    sum_sq: f64,
    frames: usize,
    peak: f32,
}

impl Level {
    fn add(&mut self, block: &[f32]) {
        let (rms, peak) = rms_and_peak(block);
        self.sum_sq += f64::from(rms) * f64::from(rms) * block.len() as f64;
        self.frames += block.len();
        self.peak = self.peak.max(peak);
    }
    fn rms(&self) -> f32 {
        if self.frames == 0 {
            0.0
        } else {
            (self.sum_sq / self.frames as f64).sqrt() as f32
        }
    }
}

/// The output callback: renders playback and writes it to every channel in the device's
/// sample format. **Real time.**
pub struct OutputCallback {
    renderer: PlaybackRenderer,
    /// Copies what was rendered for the echo canceller (when one is set up).
    tap: Option<ReferenceTap>,
    mono: Box<[f32]>,
    channels: usize,
    stats: Arc<SharedStats>,
    probe: TimingProbe,
}

impl std::fmt::Debug for OutputCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputCallback")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl OutputCallback {
    /// Wraps a renderer for a device with `channels` channels at `rate` Hz.
    pub fn new(
        renderer: PlaybackRenderer,
        channels: u16,
        rate: u32,
        stats: Arc<SharedStats>,
    ) -> Self {
        Self {
            renderer,
            tap: None,
            mono: vec![0.0; MAX_BLOCK_FRAMES].into_boxed_slice(),
            channels: usize::from(channels.max(1)),
            stats,
            probe: TimingProbe::new(rate),
        }
    }

    /// Also hands every rendered block (mono, exactly what the device gets: after fades,
    /// flushes and underrun silence) to the echo canceller's reference tap.
    pub fn with_reference_tap(mut self, tap: ReferenceTap) -> Self {
        self.tap = Some(tap);
        self
    }

    /// The renderer inside (a device that flushes below the ring needs it).
    pub fn renderer_mut(&mut self) -> &mut PlaybackRenderer {
        &mut self.renderer
    }

    /// The next buffer's first frame reaches the speaker at `dac_ns` on the clock the input
    /// stream stamps with too; `exact` for a simulated device's own clock (see
    /// [`crate::aec::tap`]). **Real time.**
    #[inline]
    pub fn stamp(&mut self, dac_ns: u64, exact: bool) {
        if let Some(tap) = self.tap.as_mut() {
            tap.stamp(dac_ns, exact);
        }
    }

    /// Fills one interleaved device buffer of any sample type. **Real time.**
    pub fn process<T>(&mut self, data: &mut [T])
    where
        T: Sample + FromSample<f32>,
    {
        let frames = data.len() / self.channels;
        let started = self.probe.start(&self.stats.output_timing, frames);
        let mut level = Level::default();
        for block in data.chunks_mut(MAX_BLOCK_FRAMES * self.channels) {
            let n = block.len() / self.channels;
            let mono = &mut self.mono[..n];
            self.renderer.render(mono);
            if let Some(tap) = self.tap.as_mut() {
                tap.push(mono);
            }
            level.add(mono);
            for (frame, &m) in block.chunks_exact_mut(self.channels).zip(mono.iter()) {
                frame.fill(T::from_sample(m));
            }
        }
        self.stats.output_rms.store(level.rms());
        self.stats.output_peak.store(level.peak);
        self.stats
            .output_timing
            .duration
            .record(started.elapsed().as_nanos() as u64);
    }
}

/// The input callback: downmixes the device's frames to mono `f32`, replaces non-finite
/// samples by 0.0 (counted in `SharedStats::nonfinite_samples`) and queues them.
/// **Real time.**
pub struct InputCallback {
    writer: CaptureWriter,
    /// Pairs capture with the echo canceller's reference (when one is set up).
    clock: Option<InputClock>,
    mono: Box<[f32]>,
    channels: usize,
    stats: Arc<SharedStats>,
    probe: TimingProbe,
}

impl std::fmt::Debug for InputCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputCallback")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl InputCallback {
    /// Wraps a capture writer for a device with `channels` channels at `rate` Hz.
    pub fn new(writer: CaptureWriter, channels: u16, rate: u32, stats: Arc<SharedStats>) -> Self {
        Self {
            writer,
            clock: None,
            mono: vec![0.0; MAX_BLOCK_FRAMES].into_boxed_slice(),
            channels: usize::from(channels.max(1)),
            stats,
            probe: TimingProbe::new(rate),
        }
    }

    /// Also publishes, after each callback, how far the output had rendered when this much
    /// capture was queued: the echo canceller pairs the two streams by it.
    pub fn with_echo_clock(mut self, clock: InputClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The next buffer's first frame was captured at `adc_ns` on the clock the output stream
    /// stamps with too (see [`crate::aec::tap`]). **Real time.**
    #[inline]
    pub fn stamp(&mut self, adc_ns: u64) {
        if let Some(clock) = self.clock.as_mut() {
            clock.stamp(adc_ns);
        }
    }

    /// Takes one interleaved device buffer of any sample type. **Real time.**
    pub fn process<T>(&mut self, data: &[T])
    where
        T: Sample,
        f32: FromSample<T>,
    {
        let frames = data.len() / self.channels;
        let started = self.probe.start(&self.stats.input_timing, frames);
        let mut level = Level::default();
        let scale = 1.0 / self.channels as f32;
        let mut nonfinite = 0;
        for block in data.chunks(MAX_BLOCK_FRAMES * self.channels) {
            let n = block.len() / self.channels;
            for (m, frame) in self.mono[..n]
                .iter_mut()
                .zip(block.chunks_exact(self.channels))
            {
                // Average, so a signal on every channel keeps its level in mono.
                *m = frame.iter().map(|&s| f32::from_sample(s)).sum::<f32>() * scale;
            }
            // A NaN or inf from a broken driver (or an overflowing downmix) must never reach
            // the reader's FFT resampler, which would panic and kill capture for good.
            nonfinite += sanitize_block(&mut self.mono[..n]);
            level.add(&self.mono[..n]);
            let queued = self.writer.capture(&self.mono[..n]);
            if let Some(clock) = self.clock.as_mut() {
                clock.queued(queued);
            }
        }
        if let Some(clock) = &self.clock {
            clock.publish();
        }
        self.writer.landed(started, frames);
        if nonfinite > 0 {
            self.stats.nonfinite_samples.fetch_add(nonfinite, Relaxed);
        }
        self.stats.input_rms.store(level.rms());
        self.stats.input_peak.store(level.peak);
        self.stats
            .input_timing
            .duration
            .record(started.elapsed().as_nanos() as u64);
    }

    /// Free space in the capture ring, in device frames.
    pub fn free_frames(&self) -> usize {
        self.writer.free_frames()
    }
}
