//! The capture path: device audio in, 16 kHz 16-bit chunks out.
//!
//! [`CaptureWriter`] (real time) pushes mono `f32` at the device rate into an SPSC ring; when
//! the ring is full it drops the newest frames and counts them, never blocking.
//! [`CaptureReader`] (non-real-time, the caller's thread) drains the ring, resamples to
//! 16 kHz with state kept across chunks, and cuts fixed-size chunks of `i16` PCM.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::aec::stage::EchoStage;
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
    let writer = CaptureWriter {
        ring: tx,
        stats: Arc::clone(&stats),
    };
    let reader = CaptureReader {
        ring: rx,
        resampler: StreamResampler::new(device_rate, CAPTURE_RATE_HZ)?,
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

/// The device's end of the capture path. **Real time.**
pub struct CaptureWriter {
    ring: rtrb::Producer<f32>,
    stats: Arc<SharedStats>,
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
}

/// The caller's end of the capture path. Not real-time.
pub struct CaptureReader {
    ring: rtrb::Consumer<f32>,
    resampler: StreamResampler,
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

    /// Device frames still missing before the next chunk is complete (an estimate used to
    /// sleep exactly as long as needed instead of polling).
    pub fn device_frames_missing(&self) -> usize {
        let have = self.resampled.len() as u64 * u64::from(self.device_rate)
            / u64::from(CAPTURE_RATE_HZ)
            + self.ring.slots() as u64
            + self.echo.as_ref().map_or(0, |e| e.pending_len() as u64)
                * u64::from(self.device_rate)
                / u64::from(CAPTURE_RATE_HZ);
        let need = (self.chunk_frames as u64 * u64::from(self.device_rate))
            .div_ceil(u64::from(CAPTURE_RATE_HZ))
            + self.resampler.chunk_frames() as u64;
        need.saturating_sub(have) as usize
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
