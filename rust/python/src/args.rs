//! Python arguments to engine settings: timeouts, PCM buffers, device selectors and the
//! virtual device's options.

use std::path::PathBuf;
use std::time::Duration;

use duplex_engine::{DeviceSelector, VirtualConfig, VirtualInput, VirtualOutput};
use numpy::{PyArray1, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict};

use crate::errors::py_error;

/// A timeout in seconds (`None` = wait forever) as a duration.
pub(crate) fn timeout_from(seconds: Option<f64>) -> PyResult<Option<Duration>> {
    match seconds {
        None => Ok(None),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(PyValueError::new_err(format!(
            "timeout must be None or a number of seconds >= 0, got {s}"
        ))),
    }
}

/// Copies 16-bit PCM from `bytes`, `bytearray` or a 1-D `numpy.int16` array.
pub(crate) fn pcm_from(obj: &Bound<'_, PyAny>) -> PyResult<Vec<i16>> {
    let py = obj.py();
    let from_bytes = |b: &[u8]| -> PyResult<Vec<i16>> {
        if b.len() % 2 != 0 {
            return Err(py_error(
                py,
                "InvalidInputError",
                format!(
                "PCM must be whole 16-bit samples, but got {} bytes (an odd number); the data is \
                 truncated or not 16-bit little-endian PCM",
                b.len()
            ),
            ));
        }
        Ok(b.chunks_exact(2)
            .map(|p| i16::from_le_bytes([p[0], p[1]]))
            .collect())
    };
    if let Ok(b) = obj.cast::<PyBytes>() {
        return from_bytes(b.as_bytes());
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return from_bytes(&b.to_vec());
    }
    if let Ok(arr) = obj.cast::<PyUntypedArray>() {
        let dtype = arr.dtype().to_string();
        if arr.ndim() != 1 {
            return Err(py_error(
                py,
                "InvalidInputError",
                format!(
                    "PCM arrays must be 1-D (mono samples), got shape {:?}; take one channel or \
                 average them first",
                    arr.shape()
                ),
            ));
        }
        let Ok(typed) = arr.cast::<PyArray1<i16>>() else {
            return Err(py_error(py, "PcmTypeError", format!(
                "PCM arrays must have dtype int16, got {dtype}; convert integer audio with \
                 x.astype(numpy.int16) and float audio in [-1, 1] with (x * 32767).astype(numpy.int16)"
            )));
        };
        let ro = typed.try_readonly()?;
        return Ok(ro.as_array().to_vec());
    }
    Err(py_error(
        py,
        "PcmTypeError",
        format!(
            "expected bytes, bytearray or a numpy.int16 array of PCM, got {}",
            obj.get_type().name()?
        ),
    ))
}

/// A device argument: None (default), False (disabled), an index or a name.
pub(crate) fn selector(obj: Option<&Bound<'_, PyAny>>) -> PyResult<DeviceSelector> {
    let Some(obj) = obj else {
        return Ok(DeviceSelector::Default);
    };
    if obj.is_none() {
        return Ok(DeviceSelector::Default);
    }
    if let Ok(false) = obj.extract::<bool>() {
        return Ok(DeviceSelector::Disabled);
    }
    if let Ok(i) = obj.extract::<i64>() {
        return usize::try_from(i)
            .map(DeviceSelector::Index)
            .map_err(|_| PyValueError::new_err(format!("device index must be >= 0, got {i}")));
    }
    if let Ok(name) = obj.extract::<String>() {
        return Ok(DeviceSelector::Name(name));
    }
    Err(PyTypeError::new_err(
        "a device is None (default), False (disabled), an index or a name",
    ))
}

/// Option `key` of the virtual device's options, or `default` when absent or None.
fn get<'py, T: FromPyObjectOwned<'py>>(
    d: &Bound<'py, PyDict>,
    key: &str,
    default: T,
) -> PyResult<T> {
    match d.get_item(key)? {
        Some(v) if !v.is_none() => v.extract::<T>().map_err(|e| {
            let e: PyErr = e.into();
            PyTypeError::new_err(format!("virtual device option '{key}': {e}"))
        }),
        _ => Ok(default),
    }
}

/// The virtual device's settings from the options dict of `VirtualDevice.to_options()`.
pub(crate) fn virtual_config(d: &Bound<'_, PyDict>) -> PyResult<VirtualConfig> {
    let base = VirtualConfig::default();
    let input = match d.get_item("input")? {
        None => VirtualInput::Silence,
        Some(v) if v.is_none() => VirtualInput::Silence,
        Some(v) => {
            let kind: String = v.get_item(0)?.extract()?;
            match kind.as_str() {
                "silence" => VirtualInput::Silence,
                "tone" => VirtualInput::Tone {
                    freq_hz: v.get_item(1)?.extract()?,
                    amplitude: v.get_item(2)?.extract()?,
                },
                "wav" => VirtualInput::Wav(v.get_item(1)?.extract::<PathBuf>()?),
                "samples" => {
                    let arr = v.get_item(1)?;
                    let arr = arr.cast::<PyArray1<f32>>().map_err(|_| {
                        PyTypeError::new_err("virtual input samples must be a 1-D float32 array")
                    })?;
                    VirtualInput::Samples {
                        samples: arr.try_readonly()?.as_array().to_vec(),
                        rate_hz: v.get_item(2)?.extract()?,
                    }
                }
                other => {
                    return Err(PyValueError::new_err(format!(
                        "unknown virtual input kind '{other}'"
                    )))
                }
            }
        }
    };
    let output = match d.get_item("output")? {
        None => VirtualOutput::Memory,
        Some(v) if v.is_none() => VirtualOutput::Discard,
        Some(v) => {
            let s: PathBuf = v.extract()?;
            if s.as_os_str() == "memory" {
                VirtualOutput::Memory
            } else {
                VirtualOutput::Wav(s)
            }
        }
    };
    Ok(VirtualConfig {
        sample_rate: get(d, "sample_rate", base.sample_rate)?,
        channels: get(d, "channels", base.channels)?,
        period_frames: get(d, "period_frames", base.period_frames)?,
        input,
        input_loop: get(d, "input_loop", base.input_loop)?,
        loopback_delay_ms: get(d, "loopback_delay_ms", None)?,
        loopback_gain: get(d, "loopback_gain", base.loopback_gain)?,
        output,
        speed: get(d, "speed", base.speed)?,
        clock_skew_ppm: get(d, "clock_skew_ppm", base.clock_skew_ppm)?,
        stall_every_periods: get(d, "stall_every_periods", base.stall_every_periods)?,
        stall_ms: get(d, "stall_ms", base.stall_ms)?,
    })
}
