//! Reading WAV files into mono `f32` at a chosen rate, for the virtual device's input.
//!
//! The header is checked before anything is sized from it (a 2 kB file claiming 2 GHz must
//! not allocate gigabytes), and non-finite float samples are replaced by 0.0 and counted
//! before they reach the resampler, whose FFT would turn one NaN into a panic.

use std::path::Path;

use crate::convert::sanitize_block;
use crate::error::{EngineError, Result};
use crate::resample::StreamResampler;

/// Lowest sample rate accepted for a WAV file or an input array.
pub const MIN_WAV_RATE_HZ: u32 = 1_000;
/// Highest sample rate accepted for a WAV file or an input array.
pub const MAX_WAV_RATE_HZ: u32 = 768_000;
/// Most frames a loaded clip may have at the device rate (2^28 = 1 GiB of `f32`, about
/// 93 minutes at 48 kHz); longer inputs are refused instead of exhausting memory.
pub const MAX_CLIP_FRAMES: u64 = 1 << 28;

/// Reads a WAV file, downmixes it to mono and resamples it to `rate` Hz.
///
/// Accepts 16-, 24- and 32-bit integer PCM and 32-bit float, any channel count and a rate in
/// [`MIN_WAV_RATE_HZ`]..=[`MAX_WAV_RATE_HZ`].
///
/// # Errors
/// [`EngineError::Wav`] when the file is missing, is not a WAV file, claims an impossible
/// rate or length, or uses an encoding the engine cannot read (for example 8-bit PCM); the
/// message names the file and the fix.
pub fn read_wav_mono(path: &Path, rate: u32) -> Result<Vec<f32>> {
    read_wav_mono_counted(path, rate).map(|(samples, _)| samples)
}

/// As [`read_wav_mono`], also returning how many non-finite samples (NaN, ±inf in a float
/// file) were replaced by 0.0.
///
/// # Errors
/// As [`read_wav_mono`].
pub fn read_wav_mono_counted(path: &Path, rate: u32) -> Result<(Vec<f32>, u64)> {
    let reader = hound::WavReader::open(path).map_err(|e| {
        EngineError::Wav(format!(
            "cannot read WAV file '{}': {e}; give a path to a RIFF/WAVE file",
            path.display()
        ))
    })?;
    let spec = reader.spec();
    if !(MIN_WAV_RATE_HZ..=MAX_WAV_RATE_HZ).contains(&spec.sample_rate) {
        return Err(EngineError::Wav(format!(
            "WAV file '{}' claims a sample rate of {} Hz; only {MIN_WAV_RATE_HZ}..={MAX_WAV_RATE_HZ} Hz \
             is supported (the header may be damaged; re-export the file, e.g. `sox in.wav -r 48000 out.wav`)",
            path.display(),
            spec.sample_rate
        )));
    }
    let channels = usize::from(spec.channels.max(1));
    // The header's claimed length, checked against the file's real size and the clip limit
    // before any buffer is sized from it.
    let claimed_frames = u64::from(reader.duration());
    let file_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(u64::MAX);
    let bytes_per_frame = u64::from(spec.bits_per_sample).div_ceil(8) * channels as u64;
    let frames = claimed_frames.min(file_bytes / bytes_per_frame.max(1));
    check_clip_length(
        frames,
        spec.sample_rate,
        rate,
        &format!("WAV file '{}'", path.display()),
    )?;
    let mut samples: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => read_to_end(reader.into_samples::<f32>(), path)?,
        (hound::SampleFormat::Int, bits @ (16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            read_to_end(
                reader
                    .into_samples::<i32>()
                    .map(|s| s.map(|v| v as f32 * scale)),
                path,
            )?
        }
        (format, bits) => {
            return Err(EngineError::Wav(format!(
                "WAV file '{}' is {bits}-bit {format:?}, which the virtual device cannot read; \
                 convert it to 16-bit PCM (for example `sox in.wav -b 16 out.wav`)",
                path.display()
            )))
        }
    };
    samples.truncate(samples.len() / channels * channels);
    let mono: Vec<f32> = samples
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect();
    resample_all_counted(&mono, spec.sample_rate, rate)
}

/// Refuses a clip that would be longer than [`MAX_CLIP_FRAMES`] at the device rate.
fn check_clip_length(frames: u64, from: u32, to: u32, what: &str) -> Result<()> {
    let out_frames = u128::from(frames) * u128::from(to) / u128::from(from.max(1));
    if out_frames > u128::from(MAX_CLIP_FRAMES) {
        let error = if what.starts_with("WAV") {
            EngineError::Wav
        } else {
            EngineError::InvalidInput
        };
        return Err(error(format!(
            "{what} is {out_frames} frames long at {to} Hz; at most {MAX_CLIP_FRAMES} (about \
             {:.0} minutes) fit in memory as a virtual input: cut it into shorter files",
            MAX_CLIP_FRAMES as f64 / f64::from(to) / 60.0
        )));
    }
    Ok(())
}

/// Collects samples until the data ends. A data chunk that ends before its header says
/// (streaming writers put 0xFFFFFFFF there) is read to the end of the file, as sox and
/// ffmpeg do; a malformed sample is an error.
fn read_to_end<I>(samples: I, path: &Path) -> Result<Vec<f32>>
where
    I: Iterator<Item = hound::Result<f32>>,
{
    let mut out = Vec::new();
    for s in samples {
        match s {
            Ok(v) => out.push(v),
            Err(hound::Error::IoError(_)) => break,
            Err(e) => return Err(wav_decode_error(path, &e)),
        }
    }
    Ok(out)
}

fn wav_decode_error(path: &Path, e: &hound::Error) -> EngineError {
    EngineError::Wav(format!(
        "WAV file '{}' is damaged or truncated: {e}",
        path.display()
    ))
}

/// Resamples a whole clip, time-aligned and exactly `len × to / from` frames long.
/// Non-finite samples are replaced by 0.0 first (see [`resample_all_counted`]).
///
/// # Errors
/// [`EngineError::InvalidInput`] for a zero rate or a result too long to hold.
pub fn resample_all(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    resample_all_counted(samples, from, to).map(|(out, _)| out)
}

/// As [`resample_all`], also returning how many non-finite input samples were replaced by
/// 0.0 (the FFT resampler panics on NaN, and one would smear over a whole block).
///
/// # Errors
/// As [`resample_all`].
pub fn resample_all_counted(samples: &[f32], from: u32, to: u32) -> Result<(Vec<f32>, u64)> {
    resample_clip(samples, from, to, StreamResampler::new)
}

/// As [`resample_all`], through the capture path's low-latency filter
/// ([`StreamResampler::low_latency`]) instead of the block resampler: what the quality
/// benchmark measures for the capture conversions.
///
/// # Errors
/// As [`resample_all`].
pub fn resample_all_low_latency(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    resample_clip(samples, from, to, StreamResampler::low_latency).map(|(out, _)| out)
}

fn resample_clip(
    samples: &[f32],
    from: u32,
    to: u32,
    make: fn(u32, u32) -> Result<StreamResampler>,
) -> Result<(Vec<f32>, u64)> {
    if from == 0 || to == 0 {
        return Err(EngineError::InvalidInput(format!(
            "sample rates must be positive, got {from} Hz -> {to} Hz"
        )));
    }
    check_clip_length(samples.len() as u64, from, to, "the input")?;
    let mut clean = samples.to_vec();
    let nonfinite = sanitize_block(&mut clean);
    if from == to {
        return Ok((clean, nonfinite));
    }
    let mut resampler = make(from, to)?;
    let expected = (clean.len() as u128 * u128::from(to) / u128::from(from)) as usize;
    let mut out = Vec::with_capacity(expected + 1024);
    resampler.process(&clean, &mut out);
    resampler.flush(&mut out);
    Ok((out, nonfinite))
}

/// Writes interleaved `f32` samples as a 16-bit PCM WAV file.
///
/// # Errors
/// [`EngineError::Wav`] when the file cannot be created or written.
pub fn write_wav_i16(path: &Path, samples: &[f32], rate: u32, channels: u16) -> Result<()> {
    let mut writer = create_wav_writer(path, rate, channels)?;
    for &s in samples {
        writer
            .write_sample(f32_sample_to_i16(s))
            .map_err(|e| wav_write_error(path, &e))?;
    }
    writer.finalize().map_err(|e| wav_write_error(path, &e))
}

/// Opens a 16-bit PCM WAV writer.
pub(crate) fn create_wav_writer(
    path: &Path,
    rate: u32,
    channels: u16,
) -> Result<hound::WavWriter<std::io::BufWriter<std::fs::File>>> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    hound::WavWriter::create(path, spec).map_err(|e| {
        EngineError::Wav(format!(
            "cannot create WAV file '{}': {e}; check that the folder exists and is writable",
            path.display()
        ))
    })
}

pub(crate) fn wav_write_error(path: &Path, e: &hound::Error) -> EngineError {
    EngineError::Wav(format!("cannot write WAV file '{}': {e}", path.display()))
}

pub(crate) fn f32_sample_to_i16(s: f32) -> i16 {
    (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}
