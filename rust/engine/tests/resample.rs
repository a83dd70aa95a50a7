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

/// The two filters: the block (FFT) resampler and the low-latency one of the capture path.
const KINDS: [(&str, fn(u32, u32) -> duplex_engine::Result<StreamResampler>); 2] = [
    ("fft", StreamResampler::new),
    ("low-latency", StreamResampler::low_latency),
];

fn resample_in_blocks_with(
    make: fn(u32, u32) -> duplex_engine::Result<StreamResampler>,
    from: u32,
    to: u32,
    input: &[f32],
) -> Vec<f32> {
    let mut r = make(from, to).unwrap();
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
    for (kind, make) in KINDS {
        for (from, to) in PAIRS {
            let input = sine_f32(from, 1000.0, 0.5, from as usize);
            let out = resample_in_blocks_with(make, from, to, &input);
            assert_eq!(out.len(), to as usize, "{kind} {from} -> {to}");
            // Leave out the first and last 10 ms: filter start-up and the zero-padded tail.
            let edge = to as usize / 100;
            let snr = sine_snr_db(&out[edge..out.len() - edge], to, 1000.0);
            println!("{kind} {from} -> {to}: SNR {snr:.1} dB");
            assert!(snr > SNR_FLOOR_DB, "{kind} {from} -> {to}: SNR {snr:.1} dB");
        }
    }
}

#[test]
fn chunk_seams_make_no_discontinuity() {
    for (kind, make) in KINDS {
        for (from, to) in PAIRS {
            let input = sine_f32(from, 440.0, 0.5, from as usize / 2);
            let out = resample_in_blocks_with(make, from, to, &input);
            let edge = to as usize / 100;
            // Against the best-fitting sine, the error is tiny everywhere, seams included.
            let err = max_residual_after_sine_fit(&out[edge..out.len() - edge], to, 440.0);
            assert!(err < 1e-3, "{kind} {from} -> {to}: max error {err}");
            let step_limit =
                (0.5 * 2.0 * std::f64::consts::PI * 440.0 / f64::from(to)) as f32 * 1.02;
            let inner = &out[edge..out.len() - edge];
            assert!(
                max_step(inner) <= step_limit,
                "{kind} {from} -> {to}: step {}",
                max_step(inner)
            );
        }
    }
}

#[test]
fn block_size_does_not_change_the_output() {
    for (kind, make) in KINDS {
        let input = sine_f32(48_000, 997.0, 0.5, 24_000);
        let whole = {
            let mut r = make(48_000, 16_000).unwrap();
            let mut out = Vec::new();
            r.process(&input, &mut out);
            r.flush(&mut out);
            out
        };
        let ragged = resample_in_blocks_with(make, 48_000, 16_000, &input);
        assert_eq!(whole.len(), ragged.len());
        let diff = whole
            .iter()
            .zip(&ragged)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-6, "{kind}: {diff}");
    }
}

#[test]
fn content_above_the_new_nyquist_is_removed() {
    // 12 kHz at 48 kHz must not fold into the 0-8 kHz band of the 16 kHz output.
    for (kind, make) in KINDS {
        for freq in [8_050.0, 12_000.0, 23_000.0] {
            let input = sine_f32(48_000, freq, 0.5, 48_000);
            let out = resample_in_blocks_with(make, 48_000, 16_000, &input);
            let edge = 320;
            let level = rms(&out[edge..out.len() - edge]);
            let db = 20.0 * (level / (0.5 / 2f32.sqrt())).log10();
            println!("{kind}: alias of {freq} Hz at 16 kHz: {db:.1} dB");
            assert!(db < -120.0, "{kind}: alias of {freq} Hz at {db:.1} dB");
        }
    }
}

/// The capture band: the gain at 7.45 kHz (python-soxr HQ's -0.1 dB edge) is within 0.1 dB.
#[test]
fn low_latency_passband_reaches_soxr_hq() {
    for from in [48_000, 44_100] {
        let input = sine_f32(from, 7_450.0, 0.5, from as usize / 2);
        let out = resample_in_blocks_with(StreamResampler::low_latency, from, 16_000, &input);
        let edge = 320;
        let level = rms(&out[edge..out.len() - edge]);
        let db = 20.0 * (level / (0.5 / 2f32.sqrt())).log10();
        println!("{from} -> 16000: gain at 7.45 kHz {db:.3} dB");
        assert!(db > -0.1, "{from}: {db:.3} dB");
    }
}

/// The low-latency filter holds nothing back beyond its delay: an impulse comes out as soon
/// as the input up to it plus the filter delay (under 7 ms) is in, whatever the block size.
#[test]
fn low_latency_output_is_ready_one_filter_delay_after_its_input() {
    for from in [48_000u32, 44_100] {
        let mut r = StreamResampler::low_latency(from, 16_000).unwrap();
        assert!(r.is_low_latency() && r.chunk_frames() == 0);
        let impulse_at = from as usize / 10;
        let mut input = vec![0.0f32; from as usize / 5];
        input[impulse_at] = 1.0;
        let delay_in = from as usize * 7 / 1000;
        let mut out = Vec::new();
        r.process(&input[..impulse_at + delay_in], &mut out);
        let peak = out
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap()
            .0;
        assert_eq!(peak, 1_600, "{from}: peak at {peak} of {}", out.len());
        // And what is missing for 1 more output frame is said exactly.
        let need = r.input_needed_for(1);
        let before = out.len();
        r.process(&vec![0.0; need.saturating_sub(1)], &mut out);
        assert_eq!(out.len(), before, "{from}: one frame short");
        r.process(&[0.0], &mut out);
        assert_eq!(out.len(), before + 1, "{from}");
    }
}
