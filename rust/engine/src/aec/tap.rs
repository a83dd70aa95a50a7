//! The reference tap: what the output callback actually rendered, handed to the capture
//! reader with its device frame position, and the frame counters that pair the two streams.
//!
//! **[`ReferenceTap::push`] and [`InputClock`]'s methods run in device callbacks**: no
//! allocation, no lock, no blocking. The ring is allocated in [`reference_channel`].
//!
//! The ring carries `u32` words: each block is a header `[len, position_lo, position_hi]`
//! followed by `len` samples as `f32` bit patterns, committed at once, so the reader only
//! ever sees whole blocks and knows exactly where each one sits in the output stream. A
//! block that does not fit (the reader has fallen far behind) is dropped whole and counted;
//! the reader sees the gap from the positions.
//!
//! **Pairing.** Input and output may be different devices with their own clocks, started at
//! different moments. After each input callback, [`InputClock::publish`] stores
//! `offset = frames the output has rendered − frames queued in the capture ring × (output
//! rate / input rate)`: "when the microphone had delivered this much, the speaker had rendered
//! that much". The reader maps capture positions to reference positions with a smoothed
//! offset; when the clocks drift apart, the offset follows.

use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::Arc;

/// Words in a block header.
const HEADER_WORDS: usize = 3;

/// Counters shared by the output callback, the input callback and the reader.
#[derive(Debug)]
pub struct EchoClock {
    /// Frames the output callback has rendered (and tapped or dropped) so far.
    output_frames: AtomicU64,
    /// `f64` bits of the latest pairing offset, in output frames (see the module docs).
    offset_bits: AtomicU64,
    /// Whether `offset_bits` holds a value (the output has rendered at least once).
    offset_valid: AtomicBool,
    /// Reference frames the tap dropped because its ring was full.
    pub dropped_frames: AtomicU64,
    /// Largest offset published since the reader last took it, in 1/256 output frames
    /// (`i64::MIN` = none). The output position an input callback sees is stale by up to
    /// one output period, so the largest reading of a window is the most accurate one.
    offset_max: AtomicI64,
}

impl Default for EchoClock {
    fn default() -> Self {
        Self {
            output_frames: AtomicU64::new(0),
            offset_bits: AtomicU64::new(0),
            offset_valid: AtomicBool::new(false),
            dropped_frames: AtomicU64::new(0),
            offset_max: AtomicI64::new(i64::MIN),
        }
    }
}

impl EchoClock {
    /// The latest pairing offset in output frames, once both streams have run.
    pub fn offset(&self) -> Option<f64> {
        self.offset_valid
            .load(Acquire)
            .then(|| f64::from_bits(self.offset_bits.load(Relaxed)))
    }

    /// The largest offset published since the last call (output frames), if any.
    pub fn take_offset_max(&self) -> Option<f64> {
        let v = self.offset_max.swap(i64::MIN, Relaxed);
        (v != i64::MIN).then(|| v as f64 / 256.0)
    }

    /// Frames the output has rendered so far.
    pub fn output_frames(&self) -> u64 {
        self.output_frames.load(Acquire)
    }
}

/// Makes the tap (for the output callback), the clock half for the input callback and the
/// reader's end. `capacity_frames` is at the output rate and should exceed the capture ring.
pub fn reference_channel(
    output_rate: u32,
    input_rate: u32,
    capacity_frames: usize,
) -> (ReferenceTap, InputClock, TapReader) {
    let clock = Arc::new(EchoClock::default());
    // Room for the samples plus a header per (small) block.
    let words = capacity_frames + capacity_frames / 16 + 64;
    let (tx, rx) = rtrb::RingBuffer::new(words);
    (
        ReferenceTap {
            ring: tx,
            position: 0,
            clock: Arc::clone(&clock),
        },
        InputClock {
            clock: Arc::clone(&clock),
            queued: 0,
            ratio: f64::from(output_rate) / f64::from(input_rate.max(1)),
        },
        TapReader {
            ring: rx,
            clock,
            words: Vec::new(),
        },
    )
}

/// The output callback's end. **Real time.**
pub struct ReferenceTap {
    ring: rtrb::Producer<u32>,
    position: u64,
    clock: Arc<EchoClock>,
}

impl std::fmt::Debug for ReferenceTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReferenceTap")
            .field("position", &self.position)
            .finish()
    }
}

impl ReferenceTap {
    /// Copies one block of rendered mono audio (device rate) into the ring, or drops it whole
    /// and counts it when the ring is full. **Real time.**
    pub fn push(&mut self, mono: &[f32]) {
        let n = mono.len();
        if n == 0 {
            return;
        }
        match self.ring.write_chunk_uninit(n + HEADER_WORDS) {
            Ok(chunk) => {
                let header = [n as u32, self.position as u32, (self.position >> 32) as u32];
                chunk.fill_from_iter(header.into_iter().chain(mono.iter().map(|s| s.to_bits())));
            }
            Err(_) => {
                self.clock.dropped_frames.fetch_add(n as u64, Relaxed);
            }
        }
        self.position += n as u64;
        self.clock.output_frames.store(self.position, Release);
    }
}

/// The input callback's half of the pairing. **Real time.**
#[derive(Debug)]
pub struct InputClock {
    clock: Arc<EchoClock>,
    queued: u64,
    ratio: f64,
}

impl InputClock {
    /// Counts frames the input callback queued into the capture ring. **Real time.**
    #[inline]
    pub fn queued(&mut self, frames: usize) {
        self.queued += frames as u64;
    }

    /// Publishes the pairing offset after an input callback. **Real time.**
    #[inline]
    pub fn publish(&self) {
        let rendered = self.clock.output_frames.load(Acquire);
        if rendered == 0 {
            return; // the output has not started: nothing to pair with yet
        }
        let offset = rendered as f64 - self.queued as f64 * self.ratio;
        self.clock.offset_bits.store(offset.to_bits(), Relaxed);
        self.clock
            .offset_max
            .fetch_max((offset * 256.0) as i64, Relaxed);
        self.clock.offset_valid.store(true, Release);
    }
}

/// The reader's end of the tap. Not real-time.
pub struct TapReader {
    ring: rtrb::Consumer<u32>,
    clock: Arc<EchoClock>,
    words: Vec<u32>,
}

impl std::fmt::Debug for TapReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapReader").finish_non_exhaustive()
    }
}

impl TapReader {
    /// The shared counters.
    pub fn clock(&self) -> &EchoClock {
        &self.clock
    }

    /// Hands every complete block in the ring to `f` as (output position, samples).
    pub fn drain(&mut self, mut f: impl FnMut(u64, &mut dyn Iterator<Item = f32>)) {
        let n = self.ring.slots();
        if n == 0 {
            return;
        }
        let Ok(chunk) = self.ring.read_chunk(n) else {
            return;
        };
        let (a, b) = chunk.as_slices();
        self.words.clear();
        self.words.extend_from_slice(a);
        self.words.extend_from_slice(b);
        chunk.commit_all();
        let mut rest = &self.words[..];
        // The writer commits whole blocks, so the words always end on a block boundary.
        while rest.len() >= HEADER_WORDS {
            let len = rest[0] as usize;
            let position = u64::from(rest[1]) | (u64::from(rest[2]) << 32);
            let end = (HEADER_WORDS + len).min(rest.len());
            let mut samples = rest[HEADER_WORDS..end].iter().map(|&w| f32::from_bits(w));
            f(position, &mut samples);
            rest = &rest[end..];
        }
    }
}
