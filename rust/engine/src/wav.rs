//! Reading WAV files into mono `f32` at a chosen rate, for the virtual device's input.

use std::path::Path;

use crate::error::{EngineError, Result};
use crate::resample::StreamResampler;

/// Reads a WAV file, downmixes it to mono and resamples it to `rate` Hz.
///
/// Accepts 16-, 24- and 32-bit integer PCM and 32-bit float, any channel count and rate.
///
/// # Errors
/// [`EngineError::Wav`] when the file is missing, is not a WAV file, or uses an encoding the
/// engine cannot read (for example 8-bit PCM); the message names the file and the fix.
pub fn read_wav_mono(path: &Path, rate: u32) -> Result<Vec<f32>> {
    let reader = hound::WavReader::open(path).map_err(|e| {
        EngineError::Wav(format!(
            "cannot read WAV file '{}': {e}; give a path to a RIFF/WAVE file",
            path.display()
        ))
    })?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let samples: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => reader
            .into_samples::<f32>()
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| wav_decode_error(path, &e))?,
        (hound::SampleFormat::Int, bits @ (16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| wav_decode_error(path, &e))?
        }
        (format, bits) => {
            return Err(EngineError::Wav(format!(
                "WAV file '{}' is {bits}-bit {format:?}, which the virtual device cannot read; \
                 convert it to 16-bit PCM (for example `sox in.wav -b 16 out.wav`)",
                path.display()
            )))
        }
    };
    let mono: Vec<f32> = samples
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect();
    resample_all(&mono, spec.sample_rate, rate)
}

fn wav_decode_error(path: &Path, e: &hound::Error) -> EngineError {
    EngineError::Wav(format!(
        "WAV file '{}' is damaged or truncated: {e}",
        path.display()
    ))
}

/// Resamples a whole clip, time-aligned and exactly `len × to / from` frames long.
pub fn resample_all(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    if from == to {
        return Ok(samples.to_vec());
    }
    let mut resampler = StreamResampler::new(from, to)?;
    let mut out = Vec::with_capacity(samples.len() * to as usize / from as usize + 1024);
    resampler.process(samples, &mut out);
    resampler.flush(&mut out);
    Ok(out)
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
