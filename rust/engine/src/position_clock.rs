//! Missed server cycles, found from the stream's position against the wall clock.
//!
//! [`crate::device_health::FrameClock`] counts the gaps a client can see in its own queue:
//! the output ran dry, or input was fetched too late. A sound server can also lose audio
//! with the client's queue full: PipeWire's graph skips a cycle of pipewire-pulse when that
//! process is scheduled late (a busy machine; it runs at normal priority without rtkit),
//! the sink plays silence for that quantum, and neither the stream's underflow message nor
//! its timing reply says so (`underrun_for` stays 0). What does show it is the position:
//! the server's read index (output) or the frames delivered (input) falls behind the wall
//! clock by the time lost, for good. Measured on PipeWire 0.3.65 with pipewire-pulse
//! stopped for 100 ms four times: the read index fell back 64-86 ms at each stall, and
//! stayed there.
//!
//! [`PositionClock`] follows that lag, `now - position / rate`. The lag is noisy within a
//! server cycle (positions move a quantum at a time, replies arrive late), so each window
//! of wall time keeps only its smallest lag, its floor. A floor that rises above the
//! baseline in two windows in a row is audio lost, counted as a device gap next to the
//! frame clock's (minus what the frame clock already counted in those windows, so one
//! underrun is not counted twice). A floor that falls (a clock running fast, a server
//! taking a burst) moves the baseline down only when two windows agree, so one early reply
//! does not make the next normal window look like a loss. Slow drift between the device's
//! clock and the wall clock (a few hundred ppm) stays under the threshold per window and
//! is followed.
//!
//! **Real time**: arithmetic and relaxed atomics only.

use std::sync::atomic::Ordering::Relaxed;

use crate::device_health::DirectionHealth;

/// Smallest lag step counted, in seconds: the frame clock's threshold.
const THRESHOLD_S: f64 = 0.004;
/// Shortest window, in seconds. A window is also at least two buffers long, so that it
/// holds several server cycles.
const MIN_WINDOW_S: f64 = 0.2;

/// Lag follower of one stream direction. **Real time**.
#[derive(Debug)]
pub struct PositionClock {
    rate: f64,
    window_ns: u64,
    /// Start of the current window, and the smallest lag seen in it (seconds).
    window_start_ns: Option<u64>,
    window_floor: f64,
    /// Floor of the window before, when there was one since the last reset.
    previous_floor: Option<f64>,
    /// The lag of audio heard without loss, in seconds.
    baseline: Option<f64>,
    /// What other detectors had counted in `gap_frames` (all of it less this clock's own
    /// additions) at the last three window ends, newest last: what they counted while a
    /// step now confirmed was happening.
    counted_at: [u64; 3],
    /// Frames this clock added to `gap_frames`, so that its own count of one loss is not
    /// taken for another detector's count of the next.
    added_frames: u64,
}

impl PositionClock {
    /// A clock for a stream at `rate` Hz with a buffer of `buffer_frames`.
    pub fn new(rate: u32, buffer_frames: u32) -> Self {
        let rate = f64::from(rate.max(1));
        let window_s = MIN_WINDOW_S.max(2.0 * f64::from(buffer_frames) / rate);
        Self {
            rate,
            window_ns: (window_s * 1e9) as u64,
            window_start_ns: None,
            window_floor: f64::INFINITY,
            previous_floor: None,
            baseline: None,
            counted_at: [0; 3],
            added_frames: 0,
        }
    }

    /// Forgets the baseline: the position is about to jump for a reason that loses nothing
    /// (a rewrite of the server's queue, a stream that stopped playing).
    pub fn reset(&mut self) {
        self.window_start_ns = None;
        self.window_floor = f64::INFINITY;
        self.previous_floor = None;
        self.baseline = None;
    }

    /// The stream was at `position_frames` (output: heard up to there; input: delivered up
    /// to there) at `now_ns`. Counts a gap in `health` when a loss is confirmed. **Real time.**
    pub fn observe(&mut self, now_ns: u64, position_frames: f64, health: &DirectionHealth) {
        let lag = now_ns as f64 / 1e9 - position_frames / self.rate;
        let start = *self.window_start_ns.get_or_insert(now_ns);
        if now_ns.saturating_sub(start) >= self.window_ns {
            self.close_window(health);
            self.window_start_ns = Some(now_ns);
        }
        self.window_floor = self.window_floor.min(lag);
    }

    fn close_window(&mut self, health: &DirectionHealth) {
        let floor = std::mem::replace(&mut self.window_floor, f64::INFINITY);
        let counted = health
            .gap_frames
            .load(Relaxed)
            .saturating_sub(self.added_frames);
        let counted_before = self.counted_at[0];
        self.counted_at = [self.counted_at[1], self.counted_at[2], counted];
        let Some(previous) = self.previous_floor.replace(floor) else {
            return;
        };
        let Some(baseline) = self.baseline else {
            // The higher of the first two floors: a baseline set too low by one early reply
            // would count every later window as a loss; one too high only misses a loss
            // in the first windows.
            self.baseline = Some(previous.max(floor));
            return;
        };
        let (low, high) = (previous.min(floor), previous.max(floor));
        if low > baseline + THRESHOLD_S {
            let lost = (low - baseline) * self.rate;
            let elsewhere = counted.saturating_sub(counted_before) as f64;
            if lost - elsewhere > THRESHOLD_S * self.rate {
                // Where the frame clock saw the start of this gap it counted the gap; only
                // the rest of its length is added then.
                if elsewhere == 0.0 {
                    health.gaps.fetch_add(1, Relaxed);
                }
                let added = (lost - elsewhere) as u64;
                health.gap_frames.fetch_add(added, Relaxed);
                self.added_frames += added;
            }
            self.baseline = Some(low);
        } else if high < baseline - THRESHOLD_S {
            self.baseline = Some(high);
        } else if (high - baseline).abs() <= THRESHOLD_S && (low - baseline).abs() <= THRESHOLD_S {
            self.baseline = Some(low);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 48_000;
    const QUANTUM: u64 = 2048;

    /// A server pulling `QUANTUM` frames per cycle, with a reply just after each pull, as
    /// pipewire-pulse does; the read index is normalised to the start of the pulled block.
    /// `stalls` are (cycle, cycles lost); `drift_ppm` makes the device clock run slow.
    fn run(cycles: u64, stalls: &[(u64, u64)], drift_ppm: f64) -> DirectionHealth {
        let health = DirectionHealth::default();
        let mut clock = PositionClock::new(RATE, 7200);
        let period_ns = QUANTUM as f64 * 1e9 / f64::from(RATE) * (1.0 + drift_ppm * 1e-6);
        let mut lost_cycles = 0;
        for c in 0..cycles {
            lost_cycles += stalls.iter().filter(|s| s.0 == c).map(|s| s.1).sum::<u64>();
            let now = ((c + lost_cycles) as f64 * period_ns) as u64 + 300_000;
            // Reply noise: every fifth reply is 3 ms late.
            let late = if c % 5 == 0 { 3_000_000 } else { 0 };
            clock.observe(now + late, (c * QUANTUM) as f64, &health);
        }
        health
    }

    #[test]
    fn a_steady_server_loses_nothing() {
        let h = run(2000, &[], 0.0);
        assert_eq!(h.gaps.load(Relaxed), 0);
    }

    #[test]
    fn drift_of_500_ppm_is_not_a_gap() {
        for ppm in [-500.0, 500.0] {
            let h = run(3000, &[], ppm);
            assert_eq!(h.gaps.load(Relaxed), 0, "{ppm} ppm");
        }
    }

    #[test]
    fn each_missed_cycle_is_counted_with_its_length() {
        let h = run(2000, &[(300, 1), (700, 2), (1500, 3)], 0.0);
        assert_eq!(h.gaps.load(Relaxed), 3);
        let lost = h.gap_frames.load(Relaxed);
        assert!((lost as i64 - 6 * QUANTUM as i64).abs() < 200, "{lost}");
    }

    #[test]
    fn a_second_loss_in_the_next_window_is_counted_too() {
        // A server catching up after a stall of three cycles misses one more: 7 cycles
        // (0.3 s, one window) later, and 3 later, in the same window or the next.
        for second in [3, 7] {
            let h = run(2000, &[(300, 3), (300 + second, 1)], 0.0);
            let lost = h.gap_frames.load(Relaxed);
            assert!(
                (lost as i64 - 4 * QUANTUM as i64).abs() < 200,
                "{second}: {lost}"
            );
            assert!((1..=2).contains(&h.gaps.load(Relaxed)), "{second}");
        }
    }

    /// What a cycle of [`drive`] does besides the reply: the frame clock counting a gap
    /// (`gaps`, `frames`), or a reset.
    enum Event {
        FrameClockCounted(u64),
        Reset,
    }

    /// 600 cycles of one reply each, `at(c)` giving the reply's (wall-clock delay in
    /// periods, position in frames) for cycle `c`, and `event` happening at cycle 300.
    fn drive(at: impl Fn(u64) -> (u64, u64), event: Option<Event>) -> DirectionHealth {
        let health = DirectionHealth::default();
        let mut clock = PositionClock::new(RATE, 7200);
        let period = QUANTUM * 1_000_000_000 / u64::from(RATE);
        for c in 0..600u64 {
            if c == 300 {
                match event {
                    Some(Event::FrameClockCounted(frames)) => {
                        health.gaps.fetch_add(1, Relaxed);
                        health.gap_frames.fetch_add(frames, Relaxed);
                    }
                    Some(Event::Reset) => clock.reset(),
                    None => {}
                }
            }
            let (delay_periods, position) = at(c);
            clock.observe((c + delay_periods) * period, position as f64, &health);
        }
        health
    }

    #[test]
    fn a_gap_the_frame_clock_counted_is_not_counted_again() {
        // One cycle lost while the queue ran dry: the frame clock counted it already.
        let late = |c: u64| (u64::from(c >= 300), c * QUANTUM);
        let h = drive(late, Some(Event::FrameClockCounted(QUANTUM)));
        assert_eq!(h.gaps.load(Relaxed), 1);
        assert_eq!(h.gap_frames.load(Relaxed), QUANTUM);
    }

    #[test]
    fn a_gap_the_frame_clock_saw_in_part_is_counted_once_with_its_whole_length() {
        // Three cycles lost, the queue dry for the first of them.
        let late = |c: u64| (if c >= 300 { 3 } else { 0 }, c * QUANTUM);
        let h = drive(late, Some(Event::FrameClockCounted(QUANTUM)));
        assert_eq!(h.gaps.load(Relaxed), 1);
        let lost = h.gap_frames.load(Relaxed);
        assert!((lost as i64 - 3 * QUANTUM as i64).abs() < 50, "{lost}");
    }

    #[test]
    fn one_early_burst_is_not_a_loss_afterwards() {
        // Once, the server reads two quanta at once and then one cycle none.
        let burst = |c: u64| (0, if c == 300 { c + 1 } else { c } * QUANTUM);
        assert_eq!(drive(burst, None).gaps.load(Relaxed), 0);
    }

    #[test]
    fn a_reset_forgets_the_baseline() {
        // A rewrite moved the position back by half a second.
        let back = |c: u64| (0, c * QUANTUM - if c >= 300 { 24_000 } else { 0 });
        assert_eq!(drive(back, Some(Event::Reset)).gaps.load(Relaxed), 0);
    }
}
