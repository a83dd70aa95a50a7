//! The capture path: device audio in, 16 kHz 16-bit chunks out.
//!
//! [`CaptureWriter`] (real time) pushes mono `f32` at the device rate into an SPSC ring; when
//! the ring is full it drops the newest frames and counts them, never blocking.
//! [`CaptureReader`] (non-real-time, the caller's thread) drains the ring, resamples to
//! 16 kHz with state kept across chunks, and cuts fixed-size chunks of `i16` PCM.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::aec::stage::EchoStage;
use crate::aec::AEC_FRAME;
use crate::convert::f32_to_i16;
use crate::error::Result;
use crate::resample::StreamResampler;
use crate::stats::SharedStats;

/// Sample rate of the chunks [`CaptureReader`] produces.
pub const CAPTURE_RATE_HZ: u32 = 16_000;

/// Builds a capture ring of `capacity_frames` (device rate) and returns both ends.
pub fn capture_channel(
    device_rate: u32,
    capacity_frames: usize,
    chunk_ms: u32,
    stats: Arc<SharedStats>,
) -> Result<(CaptureWriter, CaptureReader)> {
    let (tx, rx) = rtrb::RingBuffer::new(capacity_frames);
    let chunk_frames = (CAPTURE_RATE_HZ * chunk_ms / 1000) as usize;
    let landing = Arc::new(Landing {
        epoch: Instant::now(),
        at_ns: AtomicU64::new(0),
        frames: AtomicU64::new(0),
    });
    let writer = CaptureWriter {
        ring: tx,
        stats: Arc::clone(&stats),
        landing: Arc::clone(&landing),
    };
    let reader = CaptureReader {
        ring: rx,
        // Capture is where latency is heard: the low-latency filter holds nothing back.
        resampler: StreamResampler::low_latency(device_rate, CAPTURE_RATE_HZ)?,
        landing,
        chunk_frames,
        device_rate,
        resampled: Vec::with_capacity(chunk_frames * 4),
        stats,
        echo: None,
        raw: Vec::new(),
        ring_read: 0,
    };
    Ok((writer, reader))
}

/// When the device last queued audio and how much: the reader sleeps until the period that
/// completes its chunk is due instead of polling (nothing here wakes anyone: the device
/// side only stores two atomics).
#[derive(Debug)]
struct Landing {
    epoch: Instant,
    /// Nanoseconds after `epoch` the last period landed (0: none yet).
    at_ns: AtomicU64,
    /// Frames in that period.
    frames: AtomicU64,
}

/// The device's end of the capture path. **Real time.**
pub struct CaptureWriter {
    ring: rtrb::Producer<f32>,
    stats: Arc<SharedStats>,
    landing: Arc<Landing>,
}

impl std::fmt::Debug for CaptureWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureWriter").finish_non_exhaustive()
    }
}

impl CaptureWriter {
    /// Queues one block of mono device-rate audio and returns how many frames were queued.
    /// **Real time**: on a full ring the frames that do not fit (the newest) are dropped and
    /// counted.
    pub fn capture(&mut self, mono: &[f32]) -> usize {
        let (_, dropped) = self.ring.push_partial_slice(mono);
        self.stats
            .frames_captured
            .fetch_add(mono.len() as u64, Relaxed);
        if !dropped.is_empty() {
            self.stats.capture_overflows.fetch_add(1, Relaxed);
            self.stats
                .capture_overflow_frames
                .fetch_add(dropped.len() as u64, Relaxed);
        }
        mono.len() - dropped.len()
    }

    /// Free space in the ring, in device frames.
    pub fn free_frames(&self) -> usize {
        self.ring.slots()
    }

    /// Records that one device period of `frames` frames, which started arriving at `at`,
    /// is now queued. **Real time**: two atomic stores. Optional: without it the reader
    /// estimates its waits from the missing frames alone.
    pub fn landed(&self, at: Instant, frames: usize) {
        let ns = at.saturating_duration_since(self.landing.epoch).as_nanos() as u64;
        self.landing.frames.store(frames as u64, Relaxed);
        self.landing.at_ns.store(ns.max(1), Ordering::Release);
    }
}

/// The caller's end of the capture path. Not real-time.
pub struct CaptureReader {
    ring: rtrb::Consumer<f32>,
    resampler: StreamResampler,
    landing: Arc<Landing>,
    chunk_frames: usize,
    device_rate: u32,
    resampled: Vec<f32>,
    stats: Arc<SharedStats>,
    /// The echo canceller, when the engine has an output to pair with.
    echo: Option<EchoStage>,
    /// Resampled capture on its way into the echo canceller.
    raw: Vec<f32>,
    /// Frames taken out of the ring (read or cleared), for pairing with the reference.
    ring_read: u64,
}

impl std::fmt::Debug for CaptureReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureReader")
            .field("chunk_frames", &self.chunk_frames)
            .field("device_rate", &self.device_rate)
            .finish()
    }
}

impl CaptureReader {
    /// Frames (16 kHz) in one chunk.
    pub fn chunk_frames(&self) -> usize {
        self.chunk_frames
    }

    /// Device frames waiting in the ring.
    pub fn queued_frames(&self) -> usize {
        self.ring.slots()
    }

    /// Moves what the ring holds through the resampler, at most a few chunks' worth: after a
    /// stall the ring can hold a minute or more, and resampling all of it at once grew
    /// `resampled` to that size (kept as capacity: RSS rose by tens of MB in steps, seen
    /// in the soak) and made every chunk read shift the whole backlog. The ring is the
    /// backlog's preallocated home; each read takes what the next chunks need.
    fn drain_ring(&mut self) {
        let chunk_device_frames = (self.chunk_frames as u64 * u64::from(self.device_rate))
            .div_ceil(u64::from(CAPTURE_RATE_HZ)) as usize;
        let n = self
            .ring
            .slots()
            .min(4 * chunk_device_frames + self.resampler.chunk_frames());
        if n == 0 {
            return;
        }
        if let Ok(chunk) = self.ring.read_chunk(n) {
            let (a, b) = chunk.as_slices();
            // With echo cancellation the resampled audio takes a detour through it.
            let target = if self.echo.is_some() {
                &mut self.raw
            } else {
                &mut self.resampled
            };
            self.resampler.process(a, target);
            self.resampler.process(b, target);
            chunk.commit_all();
            self.ring_read += n as u64;
        }
        if let Some(echo) = self.echo.as_mut() {
            echo.process(&mut self.raw, &mut self.resampled);
        }
    }

    /// Runs the capture through `stage` from now on.
    pub fn set_echo(&mut self, mut stage: EchoStage) {
        stage.capture_reset(self.ring_read);
        self.echo = Some(stage);
    }

    /// The echo canceller stage, if there is one.
    pub fn echo_mut(&mut self) -> Option<&mut EchoStage> {
        self.echo.as_mut()
    }

    /// Returns the next chunk of 16 kHz mono PCM if one is complete, else `None` at once.
    pub fn try_read(&mut self) -> Option<Vec<i16>> {
        if self.resampled.len() < self.chunk_frames {
            self.drain_ring();
        }
        if self.resampled.len() < self.chunk_frames {
            return None;
        }
        let mut pcm = vec![0i16; self.chunk_frames];
        f32_to_i16(&self.resampled[..self.chunk_frames], &mut pcm);
        self.resampled.drain(..self.chunk_frames);
        self.stats.chunks_read.fetch_add(1, Relaxed);
        Some(pcm)
    }

    /// Device frames still missing before the next chunk is complete, counting what the
    /// ring, the resampler and the echo canceller already hold (exact with the low-latency
    /// resampler; an upper bound with a block resampler).
    pub fn device_frames_missing(&self) -> usize {
        let mut out_missing = self.chunk_frames.saturating_sub(self.resampled.len());
        if out_missing == 0 {
            return 0;
        }
        if let Some(echo) = &self.echo {
            // The canceller hands out whole 10 ms frames.
            out_missing = out_missing
                .next_multiple_of(AEC_FRAME)
                .saturating_sub(echo.pending_len());
        }
        self.resampler
            .input_needed_for(out_missing)
            .saturating_sub(self.ring.slots())
    }

    /// How long to sleep before the next chunk can be complete: until the device period
    /// that brings the last missing frame is due (from when the last period landed and its
    /// size), else the missing frames' duration. Zero when the period is already late, so
    /// the caller retries after its shortest sleep.
    pub fn wait_hint(&self) -> Duration {
        let missing = self.device_frames_missing() as u64;
        let rate = u64::from(self.device_rate.max(1));
        let at_ns = self.landing.at_ns.load(Ordering::Acquire);
        let period = self.landing.frames.load(Relaxed);
        if at_ns == 0 || period == 0 {
            return Duration::from_nanos(missing * 1_000_000_000 / rate);
        }
        let due_ns = at_ns + missing.div_ceil(period) * period * 1_000_000_000 / rate;
        let now_ns = self.landing.epoch.elapsed().as_nanos() as u64;
        Duration::from_nanos(due_ns.saturating_sub(now_ns))
    }

    /// Drops everything captured so far (ring, resampler state and partial chunk).
    pub fn clear(&mut self) {
        let n = self.ring.slots();
        if let Ok(chunk) = self.ring.read_chunk(n) {
            chunk.commit_all();
            self.ring_read += n as u64;
        }
        self.resampler.reset();
        self.resampled.clear();
        self.raw.clear();
        if let Some(echo) = self.echo.as_mut() {
            echo.capture_reset(self.ring_read);
        }
    }
}
