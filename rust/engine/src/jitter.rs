//! The adaptive jitter buffer: how much model audio a turn queues before it starts to play
//! (and restarts after running dry).
//!
//! Model audio arrives in bursts, sometimes slower than real time, and the Python side that
//! feeds it pauses (GC, a busy event loop). A fixed prebuffer either costs delay on every
//! turn or runs dry under such pauses (24 underruns a minute in a GC-pressure run of
//! `duplex bench` at 200 ms). So the buffer adapts to what it sees:
//!
//! * it starts at the configured `prebuffer_ms`, which is also its floor;
//! * every engine ring underrun mid-turn grows it by [`GROW_STEP_MS`] (at least half the
//!   floor), up to [`MAX_EXTRA_MS`] above the floor (and never beyond half the ring);
//! * every [`STEADY_MS`] of audio played without an underrun shrinks it by
//!   [`SHRINK_STEP_MS`] back towards the floor: a burst of trouble is remembered for a few
//!   minutes of steady delivery, not for ever.
//!
//! **Real time**: owned by the renderer on the device thread; integer arithmetic only, no
//! allocation.

/// Growth after one underrun, in milliseconds (or half the floor, if that is more).
pub const GROW_STEP_MS: u32 = 100;
/// Most the buffer grows above its floor, in milliseconds.
pub const MAX_EXTRA_MS: u32 = 800;
/// Audio played without an underrun before the buffer shrinks one step, in milliseconds.
pub const STEADY_MS: u32 = 10_000;
/// One shrink step, in milliseconds.
pub const SHRINK_STEP_MS: u32 = 40;

/// The jitter buffer's size and its rules, in device frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JitterBuffer {
    floor: usize,
    cap: usize,
    current: usize,
    grow_step: usize,
    shrink_step: usize,
    steady_needed: usize,
    steady: usize,
}

fn ms_frames(ms: u32, rate: u32) -> usize {
    (u64::from(ms) * u64::from(rate) / 1000) as usize
}

impl JitterBuffer {
    /// A buffer of `floor_frames` (the configured prebuffer, at least one frame) at `rate`
    /// Hz, for a ring of `ring_frames`.
    pub fn new(floor_frames: usize, rate: u32, ring_frames: usize) -> Self {
        let floor = floor_frames.max(1);
        // Half the ring at most, so a grown buffer can always fill (the producer also
        // releases the prebuffer when it cannot fit a chunk).
        let cap = (floor + ms_frames(MAX_EXTRA_MS, rate))
            .min(ring_frames / 2)
            .max(floor);
        Self {
            floor,
            cap,
            current: floor,
            grow_step: ms_frames(GROW_STEP_MS, rate).max(floor / 2).max(1),
            shrink_step: ms_frames(SHRINK_STEP_MS, rate).max(1),
            steady_needed: ms_frames(STEADY_MS, rate).max(1),
            steady: 0,
        }
    }

    /// Frames a turn queues before it (re)starts to play.
    pub fn frames(&self) -> usize {
        self.current
    }

    /// The floor (the configured prebuffer) and the cap, in frames.
    pub fn bounds(&self) -> (usize, usize) {
        (self.floor, self.cap)
    }

    /// The ring ran dry mid-turn: grow, and start counting steady audio again. Returns
    /// whether the size changed.
    pub fn on_underrun(&mut self) -> bool {
        self.steady = 0;
        let before = self.current;
        self.current = (self.current + self.grow_step).min(self.cap);
        self.current != before
    }

    /// `frames` of audio were played from the ring: after enough steady audio, shrink one
    /// step towards the floor. Returns whether the size changed.
    pub fn on_played(&mut self, frames: usize) -> bool {
        if self.current == self.floor {
            return false;
        }
        self.steady += frames;
        if self.steady < self.steady_needed {
            return false;
        }
        self.steady = 0;
        self.current = self
            .current
            .saturating_sub(self.shrink_step)
            .max(self.floor);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 48_000;
    const FLOOR: usize = 9_600; // 200 ms

    fn buffer() -> JitterBuffer {
        JitterBuffer::new(FLOOR, RATE, RATE as usize * 120)
    }

    #[test]
    fn starts_at_the_configured_prebuffer() {
        assert_eq!(buffer().frames(), FLOOR);
    }

    #[test]
    fn grows_after_each_underrun_up_to_its_cap() {
        let mut j = buffer();
        assert!(j.on_underrun());
        assert_eq!(j.frames(), FLOOR + 4_800, "one step: 100 ms");
        for _ in 0..100 {
            j.on_underrun();
        }
        let (floor, cap) = j.bounds();
        assert_eq!(floor, FLOOR);
        assert_eq!(cap, FLOOR + 38_400, "800 ms above the floor");
        assert_eq!(j.frames(), cap);
        assert!(!j.on_underrun(), "at the cap it stays");
    }

    #[test]
    fn shrinks_slowly_while_delivery_is_steady_never_below_the_floor() {
        let mut j = buffer();
        j.on_underrun();
        j.on_underrun();
        let grown = j.frames();
        // 9.99 s of steady audio: not yet.
        assert!(!j.on_played(479_000));
        assert_eq!(j.frames(), grown);
        assert!(j.on_played(1_000));
        assert_eq!(j.frames(), grown - 1_920, "one 40 ms step after 10 s");
        for _ in 0..1_000 {
            j.on_played(48_000);
        }
        assert_eq!(j.frames(), FLOOR, "back at the floor, not below");
        assert!(!j.on_played(480_000), "at the floor nothing changes");
    }

    #[test]
    fn an_underrun_restarts_the_steady_count() {
        let mut j = buffer();
        j.on_underrun();
        j.on_played(470_000);
        j.on_underrun();
        let grown = j.frames();
        assert!(
            !j.on_played(470_000),
            "the earlier steady audio does not count"
        );
        assert_eq!(j.frames(), grown);
    }

    #[test]
    fn a_small_ring_bounds_the_growth() {
        let mut j = JitterBuffer::new(4_800, RATE, 24_000);
        for _ in 0..10 {
            j.on_underrun();
        }
        assert_eq!(j.frames(), 12_000, "half the ring");
        // A prebuffer already above half the ring keeps its floor.
        let j = JitterBuffer::new(20_000, RATE, 24_000);
        assert_eq!(j.bounds(), (20_000, 20_000));
    }

    #[test]
    fn a_zero_prebuffer_still_grows() {
        let mut j = JitterBuffer::new(0, RATE, RATE as usize * 10);
        assert_eq!(j.frames(), 1);
        j.on_underrun();
        assert_eq!(j.frames(), 1 + 4_800);
    }
}
