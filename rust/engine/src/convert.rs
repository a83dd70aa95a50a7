//! Sample format and channel conversions, shared by the callbacks and the Python-facing side.
//!
//! All functions here are real-time safe: they only read and write the slices they are given.

/// Scale between `i16` and `f32` full scale.
const I16_SCALE: f32 = 32768.0;

/// Converts 16-bit PCM samples to `f32` in [-1, 1).
pub fn i16_to_f32(input: &[i16], output: &mut [f32]) {
    for (o, &i) in output.iter_mut().zip(input) {
        *o = f32::from(i) / I16_SCALE;
    }
}

/// Converts `f32` samples to 16-bit PCM, clipping to the representable range (no wrap-around).
pub fn f32_to_i16(input: &[f32], output: &mut [i16]) {
    for (o, &i) in output.iter_mut().zip(input) {
        // Round to nearest; `as` saturates, so out-of-range values clip instead of wrapping.
        *o = (i * I16_SCALE).round().clamp(-32768.0, 32767.0) as i16;
    }
}

/// Averages interleaved frames of `channels` samples into mono. Returns the frames written.
///
/// Averaging (not summing) keeps a full-scale signal present on every channel at full scale.
pub fn downmix_to_mono(interleaved: &[f32], channels: usize, mono: &mut [f32]) -> usize {
    if channels == 1 {
        let n = interleaved.len().min(mono.len());
        mono[..n].copy_from_slice(&interleaved[..n]);
        return n;
    }
    let scale = 1.0 / channels as f32;
    let mut frames = 0;
    for (m, frame) in mono.iter_mut().zip(interleaved.chunks_exact(channels)) {
        *m = frame.iter().sum::<f32>() * scale;
        frames += 1;
    }
    frames
}

/// Copies each mono sample to every channel of an interleaved frame. Returns the frames written.
pub fn upmix_from_mono(mono: &[f32], channels: usize, interleaved: &mut [f32]) -> usize {
    let mut frames = 0;
    for (frame, &m) in interleaved.chunks_exact_mut(channels).zip(mono) {
        frame.fill(m);
        frames += 1;
    }
    frames
}

/// Linear amplitude to dBFS; silence maps to -120 dB instead of minus infinity.
pub fn to_dbfs(amplitude: f32) -> f32 {
    if amplitude <= 1e-6 {
        -120.0
    } else {
        20.0 * amplitude.log10()
    }
}

/// Largest sample magnitude passed on to a resampler (24 dB above full scale). Anything
/// louder clips at the 16-bit conversion anyway; bounding it keeps the FFT's sums finite.
pub const MAX_SAMPLE_MAGNITUDE: f32 = 16.0;

/// Makes one captured sample safe for the resampler: NaN and ±inf become 0.0 (returned as
/// `None` so the caller can count them), finite values are clipped to
/// ±[`MAX_SAMPLE_MAGNITUDE`]. Real-time safe.
#[inline]
pub fn sanitize_sample(s: f32) -> Option<f32> {
    if s.is_finite() {
        Some(s.clamp(-MAX_SAMPLE_MAGNITUDE, MAX_SAMPLE_MAGNITUDE))
    } else {
        None
    }
}

/// Replaces every non-finite sample of `block` by 0.0 and clips the rest as
/// [`sanitize_sample`] does; returns how many were replaced. Real-time safe.
pub fn sanitize_block(block: &mut [f32]) -> u64 {
    let mut replaced = 0;
    for s in block.iter_mut() {
        match sanitize_sample(*s) {
            Some(v) => *s = v,
            None => {
                *s = 0.0;
                replaced += 1;
            }
        }
    }
    replaced
}

/// RMS and peak (both linear) of a block.
pub fn rms_and_peak(block: &[f32]) -> (f32, f32) {
    if block.is_empty() {
        return (0.0, 0.0);
    }
    let mut sum_sq = 0.0f64;
    let mut peak = 0.0f32;
    for &s in block {
        sum_sq += f64::from(s) * f64::from(s);
        peak = peak.max(s.abs());
    }
    (((sum_sq / block.len() as f64).sqrt()) as f32, peak)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i16_round_trip_is_exact() {
        let input: Vec<i16> = vec![i16::MIN, -12345, -1, 0, 1, 12345, i16::MAX];
        let mut f = vec![0.0; input.len()];
        i16_to_f32(&input, &mut f);
        let mut back = vec![0i16; input.len()];
        f32_to_i16(&f, &mut back);
        assert_eq!(input, back);
    }

    #[test]
    fn f32_to_i16_clips_instead_of_wrapping() {
        let mut out = [0i16; 4];
        f32_to_i16(&[1.5, -1.5, 1.0, -1.0], &mut out);
        assert_eq!(out, [32767, -32768, 32767, -32768]);
    }

    #[test]
    fn downmix_averages_channels() {
        let mut mono = [0.0; 2];
        let n = downmix_to_mono(&[0.5, 0.5, 1.0, -1.0], 2, &mut mono);
        assert_eq!(n, 2);
        assert_eq!(mono, [0.5, 0.0]);
    }

    #[test]
    fn upmix_copies_to_every_channel() {
        let mut out = [0.0; 6];
        let n = upmix_from_mono(&[0.25, -0.5], 3, &mut out);
        assert_eq!(n, 2);
        assert_eq!(out, [0.25, 0.25, 0.25, -0.5, -0.5, -0.5]);
    }

    #[test]
    fn sanitize_replaces_non_finite_and_bounds_the_rest() {
        let mut block = [
            f32::NAN,
            0.5,
            f32::INFINITY,
            -1e30,
            f32::NEG_INFINITY,
            -0.25,
        ];
        assert_eq!(sanitize_block(&mut block), 3);
        assert_eq!(block, [0.0, 0.5, 0.0, -MAX_SAMPLE_MAGNITUDE, 0.0, -0.25]);
    }

    #[test]
    fn dbfs_of_full_scale_sine_rms() {
        assert!((to_dbfs(std::f32::consts::FRAC_1_SQRT_2) + 3.0103).abs() < 1e-3);
        assert_eq!(to_dbfs(0.0), -120.0);
    }
}
