//! Resampler quality and continuity across chunk seams, for the four conversions that matter.

mod common;

use common::*;
use duplex_engine::resample::StreamResampler;

const PAIRS: [(u32, u32); 4] = [
    (48_000, 16_000),
    (44_100, 16_000),
    (24_000, 48_000),
    (24_000, 44_100),
];

/// Block sizes that never line up with the resampler's chunk, so every seam is exercised.
fn ragged_blocks(total: usize) -> Vec<usize> {
    let pattern = [1, 7, 480, 441, 333, 1024, 17, 2, 960];
    let mut sizes = Vec::new();
    let mut left = total;
    for &s in pattern.iter().cycle() {
        if left == 0 {
            break;
        }
        let s = s.min(left);
        sizes.push(s);
        left -= s;
    }
    sizes
}

fn resample_in_blocks(from: u32, to: u32, input: &[f32]) -> Vec<f32> {
    let mut r = StreamResampler::new(from, to).unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    for n in ragged_blocks(input.len()) {
        r.process(&input[pos..pos + n], &mut out);
        pos += n;
    }
    r.flush(&mut out);
    out
}

/// Stated floor: a 1 kHz sine keeps at least 120 dB SNR through every conversion (measured:
/// 138-143 dB, the limit of f32 arithmetic).
const SNR_FLOOR_DB: f64 = 120.0;

#[test]
fn sine_snr_is_above_the_floor_for_every_conversion() {
    for (from, to) in PAIRS {
        let input = sine_f32(from, 1000.0, 0.5, from as usize);
        let out = resample_in_blocks(from, to, &input);
        // Leave out the first and last 10 ms: filter start-up and the zero-padded tail.
        let edge = to as usize / 100;
        let snr = sine_snr_db(&out[edge..out.len() - edge], to, 1000.0);
        println!("{from} -> {to}: SNR {snr:.1} dB");
        assert!(snr > SNR_FLOOR_DB, "{from} -> {to}: SNR {snr:.1} dB");
    }
}

#[test]
fn chunk_seams_make_no_discontinuity() {
    for (from, to) in PAIRS {
        let input = sine_f32(from, 440.0, 0.5, from as usize / 2);
        let out = resample_in_blocks(from, to, &input);
        let edge = to as usize / 100;
        // Against the best-fitting sine, the error is tiny everywhere, seams included.
        let err = max_residual_after_sine_fit(&out[edge..out.len() - edge], to, 440.0);
        assert!(err < 1e-3, "{from} -> {to}: max error {err}");
        let step_limit = (0.5 * 2.0 * std::f64::consts::PI * 440.0 / f64::from(to)) as f32 * 1.02;
        let inner = &out[edge..out.len() - edge];
        assert!(
            max_step(inner) <= step_limit,
            "{from} -> {to}: step {}",
            max_step(inner)
        );
    }
}

#[test]
fn block_size_does_not_change_the_output() {
    let input = sine_f32(48_000, 997.0, 0.5, 24_000);
    let whole = {
        let mut r = StreamResampler::new(48_000, 16_000).unwrap();
        let mut out = Vec::new();
        r.process(&input, &mut out);
        r.flush(&mut out);
        out
    };
    let ragged = resample_in_blocks(48_000, 16_000, &input);
    assert_eq!(whole.len(), ragged.len());
    let diff = whole
        .iter()
        .zip(&ragged)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(diff < 1e-6, "{diff}");
}

#[test]
fn content_above_the_new_nyquist_is_removed() {
    // 12 kHz at 48 kHz must not fold into the 0-8 kHz band of the 16 kHz output.
    let input = sine_f32(48_000, 12_000.0, 0.5, 48_000);
    let out = resample_in_blocks(48_000, 16_000, &input);
    let edge = 160;
    let level = rms(&out[edge..out.len() - edge]);
    let db = 20.0 * (level / (0.5 / 2f32.sqrt())).log10();
    println!("alias of 12 kHz at 16 kHz: {db:.1} dB");
    assert!(db < -80.0, "alias at {db:.1} dB");
}
