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
//!
//! **Device time.** Where the device says when its audio meets the converters (cpal's
//! timestamps; the virtual device's own clock), each callback stamps its block:
//! [`ReferenceTap::stamp`] with the time the block's first frame reaches the speaker,
//! [`InputClock::stamp`] with the time the microphone captured the block's first frame, both
//! on one clock shared by the two streams. Each stream then has a *residual*: device time in
//! frames minus frames counted. It stays constant while a stream runs cleanly and steps by
//! exactly the audio lost when it glitches (an output underrun the server filled with silence,
//! queued output a server dropped, input lost in an overrun), which the frame counters cannot
//! see. The device-time offset is `input residual × ratio − output residual`. Its absolute
//! value is not trusted (a sound server's monitor hands the "speaker's" audio to the
//! "microphone" long before the time the server reports it played: measured 100-300 ms early
//! on a PulseAudio null sink), so the reader keeps the counters' causal pairing and takes
//! only the device-time offset's *changes*: a glitch moves the pairing by the audio it lost,
//! and the canceller keeps its state.

use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::Arc;

/// Words in a block header.
const HEADER_WORDS: usize = 3;

/// Residuals whose median a callback publishes: PulseAudio's delay reports toggle by one
/// period from call to call, a step (a glitch) persists.
const MEDIAN_OF: usize = 5;

/// The median of the last [`MEDIAN_OF`] readings, in a fixed array. **Real time.**
#[derive(Debug, Clone, Default)]
struct Median {
    values: [f64; MEDIAN_OF],
    len: usize,
    next: usize,
}

impl Median {
    fn push(&mut self, v: f64) -> f64 {
        self.values[self.next] = v;
        self.next = (self.next + 1) % MEDIAN_OF;
        self.len = (self.len + 1).min(MEDIAN_OF);
        let mut sorted = self.values;
        let filled = &mut sorted[..self.len];
        filled.sort_unstable_by(f64::total_cmp);
        filled[self.len / 2]
    }
}

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
    /// `f64` bits of the output residual (see the module docs), in output frames.
    output_residual_bits: AtomicU64,
    /// Whether the output stamps its blocks with device time.
    output_timed: AtomicBool,
    /// Whether the stamps are exact (a simulated device's own clock), so the device-time
    /// offset is trusted absolutely and not only for its changes.
    exact: AtomicBool,
    /// Whether the latest offset came from device time (both streams stamped).
    timed: AtomicBool,
    /// `f64` bits of the latest device-time offset (output frames), when `timed`.
    timed_bits: AtomicU64,
}

impl Default for EchoClock {
    fn default() -> Self {
        Self {
            output_frames: AtomicU64::new(0),
            offset_bits: AtomicU64::new(0),
            offset_valid: AtomicBool::new(false),
            dropped_frames: AtomicU64::new(0),
            offset_max: AtomicI64::new(i64::MIN),
            output_residual_bits: AtomicU64::new(0),
            output_timed: AtomicBool::new(false),
            exact: AtomicBool::new(false),
            timed: AtomicBool::new(false),
            timed_bits: AtomicU64::new(0),
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

    /// The latest device-time offset in output frames, when both streams stamp their blocks
    /// (see the module docs): its changes are real and are followed at once.
    pub fn timed_offset(&self) -> Option<f64> {
        self.timed
            .load(Acquire)
            .then(|| f64::from_bits(self.timed_bits.load(Relaxed)))
    }

    /// Whether the device-time stamps are exact (see [`ReferenceTap::stamp`]).
    pub fn exact(&self) -> bool {
        self.exact.load(Relaxed)
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
            frames_per_ns: f64::from(output_rate) / 1e9,
            median: Median::default(),
        },
        InputClock {
            clock: Arc::clone(&clock),
            queued: 0,
            ratio: f64::from(output_rate) / f64::from(input_rate.max(1)),
            frames_per_ns: f64::from(input_rate) / 1e9,
            residual: None,
            median: Median::default(),
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
    frames_per_ns: f64,
    median: Median,
}

impl std::fmt::Debug for ReferenceTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReferenceTap")
            .field("position", &self.position)
            .finish()
    }
}

impl ReferenceTap {
    /// The next block's first frame reaches the speaker at `dac_ns` (the streams' shared
    /// clock); `exact` when that is the device's own clock (the virtual device), not a sound
    /// server's estimate. Call before [`push`](Self::push). **Real time.**
    #[inline]
    pub fn stamp(&mut self, dac_ns: u64, exact: bool) {
        self.clock.exact.store(exact, Relaxed);
        // Even exact stamps go through the median: while one stream glitches, the other's
        // latest residual is from before or after the glitch for a period or two.
        let residual = self
            .median
            .push(dac_ns as f64 * self.frames_per_ns - self.position as f64);
        self.clock
            .output_residual_bits
            .store(residual.to_bits(), Relaxed);
        self.clock.output_timed.store(true, Release);
    }

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
    frames_per_ns: f64,
    /// Device time minus frames queued (input frames, median of the last few), once stamped.
    residual: Option<f64>,
    median: Median,
}

impl InputClock {
    /// The next block's first frame was captured at `adc_ns` (the streams' shared clock).
    /// Call before the block is queued. **Real time.**
    #[inline]
    pub fn stamp(&mut self, adc_ns: u64) {
        let residual = adc_ns as f64 * self.frames_per_ns - self.queued as f64;
        self.residual = Some(self.median.push(residual));
    }

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
        let timed = match self.residual {
            Some(input) if self.clock.output_timed.load(Acquire) => {
                let output = f64::from_bits(self.clock.output_residual_bits.load(Relaxed));
                Some(input * self.ratio - output)
            }
            _ => None,
        };
        if let Some(t) = timed {
            self.clock.timed_bits.store(t.to_bits(), Relaxed);
        }
        self.clock.timed.store(timed.is_some(), Release);
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
