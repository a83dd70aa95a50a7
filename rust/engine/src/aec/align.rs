//! Clock-drift compensation for the echo canceller's reference. Not real-time.
//!
//! Input and output devices with separate clocks drift apart (±100-500 ppm is common): the
//! echo then slides against the reference, and AEC3's linear filter, which models a fixed
//! echo path, loses 20-30 dB at 200 ppm. So the reference is re-timed onto the capture clock
//! before the canceller sees it: [`OffsetTrack`] fits a line through the pairing offset
//! (reference index minus capture index, measured by the callbacks' frame counters) and
//! [`Interpolator`] reads the reference at the fitted, fractional positions. With one clock
//! (one device, or the virtual device) the fit is a constant and the reference passes
//! through sample for sample.

use std::f64::consts::PI;

/// Forgetting factor per reading (0.5 s windows): about a minute of memory.
const FORGET: f64 = 0.99;
/// Readings before the slope is trusted.
const MIN_READINGS: u32 = 6;
/// Largest drift followed, as a fraction (2000 ppm): beyond that the readings are wrong.
const MAX_DRIFT: f64 = 2e-3;

/// An exponentially weighted least-squares line through (capture index, offset) readings.
#[derive(Debug, Clone)]
pub struct OffsetTrack {
    origin: f64,
    sw: f64,
    sx: f64,
    sy: f64,
    sxx: f64,
    sxy: f64,
    readings: u32,
}

impl OffsetTrack {
    /// A track starting with one reading `offset` at capture index `at`.
    pub fn new(at: f64, offset: f64) -> Self {
        let mut t = Self {
            origin: at,
            sw: 0.0,
            sx: 0.0,
            sy: 0.0,
            sxx: 0.0,
            sxy: 0.0,
            readings: 0,
        };
        t.add(at, offset);
        t
    }

    /// Adds one reading.
    pub fn add(&mut self, at: f64, offset: f64) {
        let x = at - self.origin;
        self.sw = self.sw * FORGET + 1.0;
        self.sx = self.sx * FORGET + x;
        self.sy = self.sy * FORGET + offset;
        self.sxx = self.sxx * FORGET + x * x;
        self.sxy = self.sxy * FORGET + x * offset;
        self.readings += 1;
    }

    /// Drift: offset change per capture sample (0 until enough readings).
    pub fn slope(&self) -> f64 {
        if self.readings < MIN_READINGS {
            return 0.0;
        }
        let det = self.sw * self.sxx - self.sx * self.sx;
        if det.abs() < 1e-9 {
            return 0.0;
        }
        ((self.sw * self.sxy - self.sx * self.sy) / det).clamp(-MAX_DRIFT, MAX_DRIFT)
    }

    /// The fitted offset at capture index `at`.
    pub fn offset_at(&self, at: f64) -> f64 {
        let slope = self.slope();
        let mean_x = self.sx / self.sw;
        let mean_y = self.sy / self.sw;
        mean_y + slope * (at - self.origin - mean_x)
    }
}

/// Half the taps of the fractional-delay filter.
const HALF_TAPS: usize = 16;
/// Fractional positions tabulated (linearly interpolated between).
const PHASES: usize = 256;

/// Reads a signal at fractional positions with a windowed-sinc (32 taps, Blackman): flat
/// to about 6.5 kHz at 16 kHz and exact at integer positions.
#[derive(Debug, Clone)]
pub struct Interpolator {
    /// `PHASES + 1` rows of `2 × HALF_TAPS` taps.
    table: Vec<f32>,
}

impl Default for Interpolator {
    fn default() -> Self {
        Self::new()
    }
}

impl Interpolator {
    /// Builds the filter table.
    pub fn new() -> Self {
        let taps = 2 * HALF_TAPS;
        let mut table = vec![0.0f32; (PHASES + 1) * taps];
        for p in 0..=PHASES {
            let frac = p as f64 / PHASES as f64;
            for k in 0..taps {
                // Tap k multiplies sample floor(pos) - HALF_TAPS + 1 + k.
                let d = frac + HALF_TAPS as f64 - 1.0 - k as f64;
                let sinc = if d.abs() < 1e-12 {
                    1.0
                } else {
                    (PI * d).sin() / (PI * d)
                };
                let u = (d + HALF_TAPS as f64) / (2 * HALF_TAPS) as f64;
                let w = if (0.0..=1.0).contains(&u) {
                    0.42 - 0.5 * (2.0 * PI * u).cos() + 0.08 * (4.0 * PI * u).cos()
                } else {
                    0.0
                };
                table[p * taps + k] = (sinc * w) as f32;
            }
        }
        Self { table }
    }

    /// Samples needed before and after a position.
    pub const fn reach() -> usize {
        HALF_TAPS
    }

    /// `x` at fractional index `pos` (relative to `x[0]`); needs
    /// `reach() - 1 <= floor(pos)` and `floor(pos) + reach() < x.len()`.
    pub fn at(&self, x: &[f32], pos: f64) -> f32 {
        let base = pos.floor();
        let frac = pos - base;
        let first = base as usize + 1 - HALF_TAPS;
        let window = &x[first..first + 2 * HALF_TAPS];
        let scaled = frac * PHASES as f64;
        let p = (scaled as usize).min(PHASES - 1);
        let t = (scaled - p as f64) as f32;
        let taps = 2 * HALF_TAPS;
        let (lo, hi) = (
            &self.table[p * taps..(p + 1) * taps],
            &self.table[(p + 1) * taps..(p + 2) * taps],
        );
        let mut acc = 0.0f32;
        for ((&s, &a), &b) in window.iter().zip(lo).zip(hi) {
            acc += s * (a + (b - a) * t);
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_positions_are_exact_and_a_line_is_found() {
        let x: Vec<f32> = (0..100).map(|i| (i as f32 * 0.37).sin()).collect();
        let interp = Interpolator::new();
        for i in 20..70 {
            assert!((interp.at(&x, i as f64) - x[i]).abs() < 1e-6);
        }
        let mut track = OffsetTrack::new(0.0, 10.0);
        for k in 1..20 {
            track.add(k as f64 * 8000.0, 10.0 + k as f64 * 8000.0 * 2e-4);
        }
        assert!((track.slope() - 2e-4).abs() < 1e-9);
        assert!((track.offset_at(160_000.0) - (10.0 + 32.0)).abs() < 1e-6);
    }

    #[test]
    fn half_sample_delay_of_a_tone_is_accurate() {
        let f = 3000.0 / 16000.0;
        let x: Vec<f32> = (0..200)
            .map(|i| (2.0 * PI * f * i as f64).sin() as f32)
            .collect();
        let interp = Interpolator::new();
        for i in 40..150 {
            let pos = i as f64 + 0.5;
            let want = (2.0 * PI * f * pos).sin() as f32;
            assert!((interp.at(&x, pos) - want).abs() < 2e-3, "{i}");
        }
    }
}
