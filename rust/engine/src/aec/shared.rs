//! [`EchoShared`]: the echo canceller's switch and counters, shared by the engine, its
//! `stats()` and the capture reader's [`super::stage::EchoStage`]; [`EchoStats`] their snapshot.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};

use super::AecBackend;
use crate::stats::Histogram;

/// Echo cancellation state and counters shared by the engine and its capture reader; lives
/// as long as the engine, across start/stop. Everything is atomic: `stats()` never waits
/// for the reader.
#[derive(Debug, Default)]
pub struct EchoShared {
    /// Whether the canceller processes capture audio (switchable at any time).
    pub enabled: AtomicBool,
    pub(super) backend: AtomicU32,
    pub(super) frames_processed: AtomicU64,
    pub(super) render_frames: AtomicU64,
    pub(super) reference_late_frames: AtomicU64,
    pub(super) reference_dropped_frames: AtomicU64,
    pub(super) realignments: AtomicU64,
    pub(super) shifts: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) erle_bits: AtomicU64,
    pub(super) delay_bits: AtomicU64,
    pub(super) has_metrics: AtomicBool,
    pub(super) cost_total_ns: AtomicU64,
    pub(super) cost: Histogram,
}

/// A snapshot of the echo canceller's figures.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EchoStats {
    /// Whether echo cancellation is on.
    pub enabled: bool,
    /// Which implementation runs (`"sonora"` or `"aec3"`), empty before the first start.
    pub backend: String,
    /// 10 ms capture frames the canceller processed.
    pub frames_processed: u64,
    /// 10 ms reference frames fed to it.
    pub reference_frames: u64,
    /// Echo return loss enhancement in dB as the library estimates it (`None` before it has one).
    pub erle_db: Option<f64>,
    /// The library's estimate of the echo delay in ms (`None` before it has one).
    pub delay_ms: Option<f64>,
    /// Capture frames processed before their reference arrived (held 30 ms at most).
    pub reference_late_frames: u64,
    /// Reference samples (16 kHz) dropped: too old, too far ahead, or lost in a full tap ring.
    pub reference_dropped_frames: u64,
    /// Times the pairing of capture and reference was re-established after a jump.
    pub realignments: u64,
    /// Times the device-time pairing followed a glitch of a stream (audio lost or inserted
    /// below the engine) by the audio it lost, keeping the canceller's state.
    pub shifts: u64,
    /// Frames the library refused (passed through unprocessed).
    pub errors: u64,
    /// Mean cost of one 10 ms frame (reference and capture), in microseconds.
    pub cost_mean_us: f64,
    /// 99th percentile of that cost, in microseconds.
    pub cost_p99_us: f64,
    /// Largest cost, in microseconds.
    pub cost_max_us: f64,
}

impl EchoShared {
    /// A snapshot of the counters. `clock_dropped` is the tap ring's own drop count.
    pub fn snapshot(&self) -> EchoStats {
        let frames = self.frames_processed.load(Relaxed);
        let metric = |bits: &AtomicU64| {
            self.has_metrics
                .load(Relaxed)
                .then(|| f64::from_bits(bits.load(Relaxed)))
                .filter(|v| v.is_finite())
        };
        EchoStats {
            enabled: self.enabled.load(Relaxed),
            backend: match self.backend.load(Relaxed) {
                1 => "sonora",
                2 => "aec3",
                _ => "",
            }
            .to_string(),
            frames_processed: frames,
            reference_frames: self.render_frames.load(Relaxed),
            erle_db: metric(&self.erle_bits),
            delay_ms: metric(&self.delay_bits),
            reference_late_frames: self.reference_late_frames.load(Relaxed),
            reference_dropped_frames: self.reference_dropped_frames.load(Relaxed),
            realignments: self.realignments.load(Relaxed),
            shifts: self.shifts.load(Relaxed),
            errors: self.errors.load(Relaxed),
            cost_mean_us: if frames == 0 {
                0.0
            } else {
                self.cost_total_ns.load(Relaxed) as f64 / frames as f64 / 1e3
            },
            cost_p99_us: self.cost.quantile_ns(0.99) / 1e3,
            cost_max_us: self.cost.max_ns() as f64 / 1e3,
        }
    }

    pub(super) fn set_backend(&self, backend: AecBackend) {
        let code = match backend {
            AecBackend::Sonora => 1,
            AecBackend::Aec3 => 2,
        };
        self.backend.store(code, Relaxed);
    }
}

