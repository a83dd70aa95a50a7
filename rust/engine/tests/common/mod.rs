//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::f64::consts::PI;

/// A sine of `amplitude` at `freq` Hz, `frames` long, at `rate` Hz, as f32.
pub fn sine_f32(rate: u32, freq: f64, amplitude: f64, frames: usize) -> Vec<f32> {
    (0..frames)
        .map(|i| (amplitude * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin()) as f32)
        .collect()
}

/// The same sine as 16-bit PCM.
pub fn sine_i16(rate: u32, freq: f64, amplitude: f64, frames: usize) -> Vec<i16> {
    sine_f32(rate, freq, amplitude, frames)
        .iter()
        .map(|&s| (s * 32767.0).round() as i16)
        .collect()
}

/// The least-squares fit `a·sin(w·i) + b·cos(w·i)` of `x` at `freq`: returns `(a, b, w)`.
fn fit_sine(x: &[f32], rate: u32, freq: f64) -> (f64, f64, f64) {
    let w = 2.0 * PI * freq / f64::from(rate);
    let (mut ss, mut cc, mut sc, mut xs, mut xc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, &v) in x.iter().enumerate() {
        let (s, c) = (w * i as f64).sin_cos();
        ss += s * s;
        cc += c * c;
        sc += s * c;
        xs += f64::from(v) * s;
        xc += f64::from(v) * c;
    }
    let det = ss * cc - sc * sc;
    let a = (xs * cc - xc * sc) / det;
    let b = (xc * ss - xs * sc) / det;
    (a, b, w)
}

/// Fits `a·sin + b·cos` at `freq` to `x` by least squares and returns the SNR in dB of the
/// fitted sine against the residual. Independent of phase, so it measures distortion and noise.
pub fn sine_snr_db(x: &[f32], rate: u32, freq: f64) -> f64 {
    let (a, b, w) = fit_sine(x, rate, freq);
    let (mut signal, mut noise) = (0.0, 0.0);
    for (i, &v) in x.iter().enumerate() {
        let (s, c) = (w * i as f64).sin_cos();
        let fit = a * s + b * c;
        signal += fit * fit;
        noise += (f64::from(v) - fit).powi(2);
    }
    10.0 * (signal / noise.max(1e-30)).log10()
}

/// Largest absolute deviation of `x` from the best-fitting sine at `freq` (any phase), so a
/// constant sub-sample delay does not count but a glitch at a chunk seam does.
pub fn max_residual_after_sine_fit(x: &[f32], rate: u32, freq: f64) -> f64 {
    let (a, b, w) = fit_sine(x, rate, freq);
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let (s, c) = (w * i as f64).sin_cos();
            (f64::from(v) - (a * s + b * c)).abs()
        })
        .fold(0.0, f64::max)
}

/// Estimated frequency of `x` from its zero crossings.
pub fn zero_crossing_freq(x: &[f32], rate: u32) -> f64 {
    let crossings = x
        .windows(2)
        .filter(|w| (w[0] <= 0.0) != (w[1] <= 0.0))
        .count();
    crossings as f64 / 2.0 / (x.len() as f64 / f64::from(rate))
}

/// Largest absolute sample-to-sample step.
pub fn max_step(x: &[f32]) -> f32 {
    x.windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(0.0, f32::max)
}

/// RMS of a block.
pub fn rms(x: &[f32]) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len() as f64).sqrt() as f32
}
