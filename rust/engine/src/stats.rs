//! Lock-free counters and histograms written by the device callbacks and read from any thread.
//!
//! Writers (the callbacks) only do relaxed atomic adds and stores; readers take a snapshot
//! with [`Stats`]. Nothing here allocates after construction.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// Values below this many nanoseconds get one bucket each.
const LINEAR_BUCKETS: usize = 16;
/// Sub-buckets per power of two above the linear range (about 9 % resolution).
const SUB_BUCKETS: usize = 8;
/// Octaves covered above the linear range: up to 2^40 ns, about 18 minutes.
const OCTAVES: usize = 37;
const BUCKETS: usize = LINEAR_BUCKETS + OCTAVES * SUB_BUCKETS;

/// A log-scale histogram of durations in nanoseconds, safe to record into from a real-time
/// thread (one relaxed `fetch_add` per sample) and to read from any other thread.
#[derive(Debug)]
pub struct Histogram {
    counts: Box<[AtomicU64]>,
    max_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram. Allocates once, here.
    pub fn new() -> Self {
        Self {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max_ns: AtomicU64::new(0),
        }
    }

    fn bucket_of(ns: u64) -> usize {
        if ns < LINEAR_BUCKETS as u64 {
            return ns as usize;
        }
        let exponent = 63 - ns.leading_zeros() as usize; // >= 4
        let sub = ((ns >> (exponent - 3)) & 7) as usize;
        (LINEAR_BUCKETS + (exponent - 4) * SUB_BUCKETS + sub).min(BUCKETS - 1)
    }

    /// Middle of a bucket's range, in nanoseconds.
    fn bucket_value(bucket: usize) -> f64 {
        if bucket < LINEAR_BUCKETS {
            return bucket as f64;
        }
        let exponent = (bucket - LINEAR_BUCKETS) / SUB_BUCKETS + 4;
        let sub = (bucket - LINEAR_BUCKETS) % SUB_BUCKETS;
        let step = (1u64 << (exponent - 3)) as f64;
        (1u64 << exponent) as f64 + (sub as f64 + 0.5) * step
    }

    /// Records one duration. Real-time safe.
    #[inline]
    pub fn record(&self, ns: u64) {
        self.counts[Self::bucket_of(ns)].fetch_add(1, Relaxed);
        self.max_ns.fetch_max(ns, Relaxed);
    }

    /// Number of samples recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// The largest duration recorded, in nanoseconds (exact, not bucketed).
    pub fn max_ns(&self) -> u64 {
        self.max_ns.load(Relaxed)
    }

    /// The `q`-quantile (0..=1) in nanoseconds, to within one bucket; 0 when empty.
    pub fn quantile_ns(&self, q: f64) -> f64 {
        let counts: Vec<u64> = self.counts.iter().map(|c| c.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, &c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                // Never report more than the exact maximum.
                return Self::bucket_value(bucket).min(self.max_ns() as f64);
            }
        }
        self.max_ns() as f64
    }
}

/// An `f32` stored in an `AtomicU32`, for levels that the callback publishes.
#[derive(Debug, Default)]
pub struct AtomicF32(AtomicU32);

impl AtomicF32 {
    /// Stores a value. Real-time safe.
    #[inline]
    pub fn store(&self, v: f32) {
        self.0.store(v.to_bits(), Relaxed);
    }
    /// Loads the last stored value.
    pub fn load(&self) -> f32 {
        f32::from_bits(self.0.load(Relaxed))
    }
}

/// Counters of one direction's callback: how long it ran and how regular it was.
#[derive(Debug, Default)]
pub struct CallbackTiming {
    /// Time spent inside the callback body.
    pub duration: Histogram,
    /// |actual interval − nominal period| between consecutive callback starts.
    pub interval_jitter: Histogram,
    /// Number of callbacks.
    pub callbacks: AtomicU64,
    /// Frames in the last callback: the period the device really uses, which may differ from
    /// the one requested (PulseAudio's ALSA plugin turns 480 into 320).
    pub last_frames: AtomicU32,
}

/// Everything the callbacks count, shared with the rest of the engine through an `Arc`.
#[derive(Debug, Default)]
pub struct SharedStats {
    /// Frames (at the device rate) the input callback received.
    pub frames_captured: AtomicU64,
    /// Frames the input callback dropped because the capture ring was full.
    pub capture_overflow_frames: AtomicU64,
    /// Callbacks in which at least one frame was dropped.
    pub capture_overflows: AtomicU64,
    /// Capture chunks handed to the reader.
    pub chunks_read: AtomicU64,
    /// Frames (at the device rate) rendered from the playback ring, fades included.
    pub frames_played: AtomicU64,
    /// Frames rendered in total, silence included.
    pub frames_rendered: AtomicU64,
    /// Times the playback ring ran dry in the middle of a turn.
    pub underruns: AtomicU64,
    /// Silence inserted because of underruns, in device frames.
    pub underrun_silence_frames: AtomicU64,
    /// Flushes the output callback has carried out.
    pub flushes: AtomicU64,
    /// Interrupts that rewrote the device's own queue (the native PulseAudio host).
    pub device_rewrites: AtomicU64,
    /// Device frames those rewrites replaced with a fade and silence.
    pub device_rewound_frames: AtomicU64,
    /// Frames of queued audio discarded unplayed: by flushes (including audio still inside
    /// the playback resampler) and by `stop()`.
    pub flushed_frames: AtomicU64,
    /// Device frames of model audio that entered the playback path: pushed into the ring,
    /// or still in the resampler when an interrupt dropped it. At every moment
    /// `frames_pushed = frames_played + flushed_frames + buffered` (ring and resampler).
    pub frames_pushed: AtomicU64,
    /// Captured samples that were NaN or ±inf (a broken driver, a float WAV, an array) and
    /// were replaced by 0.0 before reaching the resampler.
    pub nonfinite_samples: AtomicU64,
    /// Device error episodes: errors the backend reported (xruns, device loss, ...), with a
    /// burst of errors less than 100 ms apart counted once.
    pub device_errors: AtomicU64,
    /// Every error callback, bursts included (a backend can report one fault thousands of
    /// times in a few milliseconds).
    pub device_error_callbacks: AtomicU64,
    /// Code of the last device error (see `DeviceErrorKind`), 0 = none.
    pub last_device_error: AtomicU32,
    /// Input level of the last period, linear RMS.
    pub input_rms: AtomicF32,
    /// Input level of the last period, linear peak.
    pub input_peak: AtomicF32,
    /// Output level of the last period, linear RMS.
    pub output_rms: AtomicF32,
    /// Output level of the last period, linear peak.
    pub output_peak: AtomicF32,
    /// The jitter buffer's current size in device frames (the renderer publishes it).
    pub jitter_buffer_frames: AtomicU64,
    /// Output callback timing.
    pub output_timing: CallbackTiming,
    /// Input callback timing.
    pub input_timing: CallbackTiming,
}

/// A snapshot of the engine's counters, cheap to take from any thread.
///
/// Frame counts are at the device rate unless the name says otherwise; `_ms` fields are
/// milliseconds, `_dbfs` fields decibels relative to full scale (-120 for silence).
#[derive(Debug, Clone, Default, PartialEq)]
#[allow(missing_docs)] // the field names and the struct doc say it all
pub struct Stats {
    pub input_rate_hz: u32,
    pub output_rate_hz: u32,
    pub input_channels: u16,
    pub output_channels: u16,
    pub period_frames: u32,
    pub frames_captured: u64,
    pub capture_overflows: u64,
    pub capture_overflow_frames: u64,
    /// Captured samples that were NaN or ±inf and were replaced by 0.0.
    pub nonfinite_samples: u64,
    pub chunks_read: u64,
    pub frames_played: u64,
    pub frames_rendered: u64,
    pub underruns: u64,
    pub underrun_silence_ms: f64,
    pub flushes: u64,
    pub flushed_ms: f64,
    /// Device frames of model audio that entered the playback path. Exactly
    /// `frames_played + frames_flushed + playback_buffered_frames` when the engine is idle
    /// or stopped; while it runs, the three are read microseconds apart.
    pub frames_pushed: u64,
    /// Device frames discarded unplayed, by interrupts (ring and resampler) and by `stop()`.
    pub frames_flushed: u64,
    /// Device frames received and not yet played: the ring plus the playback resampler.
    pub playback_buffered_frames: u64,
    pub output_callbacks: u64,
    pub input_callbacks: u64,
    pub callback_p50_us: f64,
    pub callback_p99_us: f64,
    pub callback_max_us: f64,
    pub input_callback_p99_us: f64,
    pub input_callback_max_us: f64,
    pub jitter_p99_ms: f64,
    pub jitter_max_ms: f64,
    pub input_jitter_p99_ms: f64,
    pub input_jitter_max_ms: f64,
    pub playback_buffered_ms: f64,
    pub capture_buffered_ms: f64,
    pub input_rms_dbfs: f32,
    pub input_peak_dbfs: f32,
    pub output_rms_dbfs: f32,
    pub output_peak_dbfs: f32,
    pub device_errors: u64,
    pub device_error_callbacks: u64,
    pub last_device_error: String,
    pub turn_played_ms: f64,
    pub turn_received_ms: f64,
    /// Whether a finite virtual input has played to its end.
    pub input_ended: bool,
    /// Whether echo cancellation is switched on.
    pub echo_cancellation: bool,
    /// The canceller (`sonora` or `aec3`), empty before one ran.
    pub echo_backend: String,
    /// 10 ms capture frames the canceller processed.
    pub echo_frames: u64,
    /// Echo return loss enhancement as the library estimates it, dB (0 until it has one).
    pub echo_erle_db: f64,
    /// The library's estimate of the echo delay, ms (0 until it has one).
    pub echo_delay_ms: f64,
    /// Capture frames processed before their reference arrived.
    pub echo_reference_late: u64,
    /// Reference samples (16 kHz) dropped: too old, too far ahead, or lost in a full tap ring.
    pub echo_reference_dropped: u64,
    /// Times the pairing of capture and reference restarted after a jump.
    pub echo_realignments: u64,
    /// Times the device-time pairing followed a glitch of one stream by the audio it lost
    /// (the canceller's state kept).
    pub echo_shifts: u64,
    /// Frames the library refused (passed through unprocessed).
    pub echo_errors: u64,
    /// Mean cost of one 10 ms frame (reference and capture), microseconds.
    pub echo_cost_mean_us: f64,
    /// 99th percentile of that cost, microseconds.
    pub echo_cost_p99_us: f64,
    /// Largest cost of one frame, microseconds.
    pub echo_cost_max_us: f64,
    /// The devices' health, published flat under the names its [`Fields`](crate::Fields)
    /// list gives (`device_state`, ..., `input_thread`).
    pub device: DeviceStatus,
    /// The jitter buffer now: model audio a turn queues before it starts (and restarts after
    /// running dry) to play, in milliseconds. It starts at `prebuffer_ms`, grows after an
    /// underrun and shrinks back slowly while delivery is steady.
    pub jitter_buffer_ms: f64,
}

/// The health of real devices: a snapshot from
/// [`Engine::device_status`](crate::Engine::device_status), and the `device_*`,
/// `*_period_frames`, `*_delay_ms`, gap, xrun and thread fields of [`Stats`] (which holds
/// one).
///
/// Gaps are what a listener lost below the engine's ring, found from the device's frame
/// clock (see [`crate::device_health::FrameClock`]); `*_backend_xruns` are the xruns the
/// backend itself reported (ALSA `EPIPE`). Frame counts are converted to milliseconds at
/// the device rate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceStatus {
    /// "running", "lost" (gone; the engine reopens them by itself), "stopped", or "virtual"
    /// (the virtual device: the figures below are its own, gap-free clock's).
    pub state: String,
    /// Why the devices are gone (empty while they run).
    pub lost_reason: String,
    /// Times the devices were lost (streams given up because they died).
    pub losses: u64,
    /// Times they were reopened after a loss.
    pub restores: u64,
    /// Dead streams that hung in their backend on shutdown and were left behind.
    pub leaked_streams: u64,
    /// Output device id (e.g. `alsa:default`), empty without output.
    pub output_device: String,
    /// Input device id, empty without input.
    pub input_device: String,
    /// The host the streams run (or last ran) on: "alsa", "pulse" (the engine's own
    /// PulseAudio client), "virtual"; "" before any ran.
    pub host: String,
    /// Output buffer the host granted, in milliseconds (PulseAudio's `tlength` read back;
    /// 0 where the host does not say, as cpal's ALSA host).
    pub output_buffer_ms: f64,
    /// Interrupts that rewrote the device's own queue (host "pulse": the server's queue past
    /// its read index became a fade and silence), and the audio so replaced, in ms.
    pub device_rewrites: u64,
    /// See `device_rewrites`.
    pub device_rewound_ms: f64,
    /// Device buffer asked for, in milliseconds (the `latency` setting, or two periods of
    /// `period_frames`; 0 on the virtual device).
    pub latency_requested_ms: f64,
    /// Output period the host granted, in frames (read back from the stream).
    pub output_period_frames: u32,
    /// Input period the host granted, in frames.
    pub input_period_frames: u32,
    /// Audio queued in the host ahead of the listener at the last output callback, per the
    /// host's timestamps (the output latency the host really runs at), in milliseconds.
    pub output_delay_ms: f64,
    /// Audio waiting in the host at the last input callback, in milliseconds.
    pub input_delay_ms: f64,
    /// Output underruns below the ring that a listener hears: the output device ran dry (the
    /// server played silence it was not given), found from the device's frame clock.
    pub output_device_underruns: u64,
    /// Audio lost to them, in milliseconds.
    pub output_device_underrun_ms: f64,
    /// Input overruns below the ring (audio the device produced and dropped before the
    /// engine fetched it).
    pub input_device_overruns: u64,
    /// Audio lost to them, in milliseconds.
    pub input_device_overrun_ms: f64,
    /// Xruns the backend itself reported on the output (ALSA `EPIPE`).
    pub output_backend_xruns: u64,
    /// Xruns the backend reported on the input.
    pub input_backend_xruns: u64,
    /// Every error callback of the output streams.
    pub output_error_callbacks: u64,
    /// Every error callback of the input streams.
    pub input_error_callbacks: u64,
    /// Scheduling of the output device thread: "realtime", "normal (...)" with the reason,
    /// or "" before its first callback.
    pub output_thread: String,
    /// Scheduling of the input device thread.
    pub input_thread: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_within_a_bucket() {
        let h = Histogram::new();
        for ns in 1..=10_000u64 {
            h.record(ns * 1000);
        }
        assert_eq!(h.count(), 10_000);
        assert_eq!(h.max_ns(), 10_000_000);
        let p50 = h.quantile_ns(0.5);
        let p99 = h.quantile_ns(0.99);
        assert!((p50 / 5_000_000.0 - 1.0).abs() < 0.1, "p50 {p50}");
        assert!((p99 / 9_900_000.0 - 1.0).abs() < 0.1, "p99 {p99}");
        assert!(h.quantile_ns(1.0) <= 10_000_000.0);
    }

    #[test]
    fn histogram_small_values_are_exact() {
        let h = Histogram::new();
        h.record(3);
        assert_eq!(h.quantile_ns(0.5), 3.0);
        assert_eq!(Histogram::new().quantile_ns(0.5), 0.0);
    }

    #[test]
    fn every_bucket_value_maps_back_to_its_bucket() {
        for b in 0..BUCKETS - 1 {
            let v = Histogram::bucket_value(b) as u64;
            assert_eq!(Histogram::bucket_of(v), b, "bucket {b} value {v}");
        }
    }
}
