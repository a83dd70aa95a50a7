//! The virtual device's options (the dict of `VirtualDevice.to_options()`), read strictly:
//! an unknown or misspelt option, a wrong type or a non-finite number raises, naming the
//! option; nothing is ignored or converted silently.

use std::path::PathBuf;

use duplex_engine::callback::MAX_BLOCK_FRAMES;
use duplex_engine::{VirtualConfig, VirtualInput, VirtualOutput};
use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::args::{finite, flag, show, whole};
use crate::errors::{error, Class};

/// Longest period a device may have (the callbacks' block size).
const MAX_PERIOD: i128 = MAX_BLOCK_FRAMES as i128;

/// Every option the virtual device takes.
const OPTIONS: &[&str] = &[
    "sample_rate",
    "channels",
    "period_frames",
    "input",
    "input_loop",
    "loopback_delay_ms",
    "loopback_gain",
    "output",
    "speed",
    "clock_skew_ppm",
    "stall_every_periods",
    "stall_ms",
];

/// The options dict as a `VirtualConfig`; absent options (or `None`, except for `output`)
/// keep their defaults.
pub(crate) fn virtual_config(d: &Bound<'_, PyDict>) -> PyResult<VirtualConfig> {
    let py = d.py();
    for key in d.keys() {
        let known = key
            .extract::<String>()
            .is_ok_and(|k| OPTIONS.contains(&k.as_str()));
        if !known {
            return Err(error(
                py,
                Class::InvalidInput,
                format!(
                    "unknown virtual device option {}; the options are {}",
                    show(&key),
                    OPTIONS.join(", ")
                ),
            ));
        }
    }
    let get = |key: &str| -> PyResult<Option<Bound<'_, PyAny>>> {
        Ok(d.get_item(key)?.filter(|v| !v.is_none()))
    };
    let base = VirtualConfig::default();
    let u32_max = i128::from(u32::MAX);
    Ok(VirtualConfig {
        sample_rate: get("sample_rate")?
            .map(|v| whole(&v, "sample_rate", 8_000, 384_000, "Hz"))
            .transpose()?
            .unwrap_or(base.sample_rate),
        channels: get("channels")?
            .map(|v| whole(&v, "channels", 1, 32, "channels"))
            .transpose()?
            .unwrap_or(base.channels),
        period_frames: get("period_frames")?
            .map(|v| whole(&v, "period_frames", 16, MAX_PERIOD, "frames per callback"))
            .transpose()?
            .unwrap_or(base.period_frames),
        input: match get("input")? {
            None => VirtualInput::Silence,
            Some(spec) => input(&spec)?,
        },
        input_loop: get("input_loop")?
            .map(|v| flag(&v, "input_loop"))
            .transpose()?
            .unwrap_or(base.input_loop),
        loopback_delay_ms: get("loopback_delay_ms")?
            .map(|v| finite(&v, "loopback_delay_ms", "milliseconds"))
            .transpose()?,
        loopback_gain: get("loopback_gain")?
            .map(|v| finite(&v, "loopback_gain", "linear gain").map(|g| g as f32))
            .transpose()?
            .unwrap_or(base.loopback_gain),
        output: match d.get_item("output")? {
            None => VirtualOutput::Memory,
            Some(v) if v.is_none() => VirtualOutput::Discard,
            Some(v) => output(&v)?,
        },
        speed: get("speed")?
            .map(|v| finite(&v, "speed", "times real time"))
            .transpose()?
            .unwrap_or(base.speed),
        clock_skew_ppm: get("clock_skew_ppm")?
            .map(|v| finite(&v, "clock_skew_ppm", "parts per million"))
            .transpose()?
            .unwrap_or(base.clock_skew_ppm),
        stall_every_periods: get("stall_every_periods")?
            .map(|v| whole(&v, "stall_every_periods", 0, u32_max, "periods"))
            .transpose()?
            .unwrap_or(base.stall_every_periods),
        stall_ms: get("stall_ms")?
            .map(|v| finite(&v, "stall_ms", "milliseconds"))
            .transpose()?
            .unwrap_or(base.stall_ms),
        // Simulated xruns are for the engine's own tests (cargo), not offered to Python.
        ..base
    })
}

/// `("tone", freq_hz, amplitude)`, `("wav", path)`, `("samples", float32 array, rate_hz)`
/// or `("silence",)`.
fn input(spec: &Bound<'_, PyAny>) -> PyResult<VirtualInput> {
    let py = spec.py();
    let bad = || {
        error(
            py,
            Class::InvalidInput,
            format!(
                "virtual input spec must be ('silence',), ('tone', freq_hz, amplitude), \
                 ('wav', path) or ('samples', float32 array, rate_hz), got {}",
                show(spec)
            ),
        )
    };
    let spec = spec.cast::<PyTuple>().map_err(|_| bad())?;
    let kind = spec
        .get_item(0)
        .ok()
        .and_then(|k| k.extract::<String>().ok())
        .ok_or_else(bad)?;
    let arity = match kind.as_str() {
        "silence" => 1,
        "wav" => 2,
        "tone" | "samples" => 3,
        _ => return Err(bad()),
    };
    if spec.len() != arity {
        return Err(bad());
    }
    Ok(match kind.as_str() {
        "silence" => VirtualInput::Silence,
        "tone" => VirtualInput::Tone {
            freq_hz: finite(&spec.get_item(1)?, "Tone.freq_hz", "Hz")? as f32,
            amplitude: finite(&spec.get_item(2)?, "Tone.amplitude", "linear amplitude")? as f32,
        },
        "wav" => VirtualInput::Wav(path(&spec.get_item(1)?, "input")?),
        _ => {
            let arr = spec.get_item(1)?;
            let arr = arr.cast::<PyArray1<f32>>().map_err(|_| {
                error(
                    py,
                    Class::ArgumentType,
                    "virtual input samples must be a 1-D float32 array",
                )
            })?;
            VirtualInput::Samples {
                samples: arr.try_readonly()?.as_array().to_vec(),
                rate_hz: whole(&spec.get_item(2)?, "input_rate", 1, 384_000, "Hz")?,
            }
        }
    })
}

/// `"memory"` or a WAV path to write.
fn output(v: &Bound<'_, PyAny>) -> PyResult<VirtualOutput> {
    if v.cast::<PyString>()
        .is_ok_and(|s| s.to_str().is_ok_and(|s| s == "memory"))
    {
        return Ok(VirtualOutput::Memory);
    }
    Ok(VirtualOutput::Wav(path(v, "output")?))
}

fn path(v: &Bound<'_, PyAny>, name: &str) -> PyResult<PathBuf> {
    v.extract::<PathBuf>().map_err(|_| {
        error(
            v.py(),
            Class::ArgumentType,
            format!("virtual device {name} must be a file path, got {}", show(v)),
        )
    })
}
