//! Python arguments to engine settings, read strictly where they enter: whole numbers,
//! finite numbers, flags, timeouts, PCM buffers and device selectors. A wrong type raises
//! `ArgumentTypeError` and an unusable value `InvalidInputError`, each naming the argument,
//! what it takes and what to do; nothing is silently converted (`2.5` is not a frame count,
//! `"no"` is not a flag, `True` is not device 1).

use std::time::Duration;

use duplex_engine::{DeviceSelector, Host, Latency};
use numpy::{PyArray1, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyFloat, PyInt};

use crate::errors::{error, Class};

/// Longest timeout accepted, in seconds (about 31.7 years): far beyond any real wait, far
/// below what would overflow a clock. `None` waits without a limit.
pub(crate) const MAX_TIMEOUT_S: f64 = 1e9;

/// `repr()` of an argument for a message, cut short so a huge value cannot flood it.
pub(crate) fn show(obj: &Bound<'_, PyAny>) -> String {
    let text = obj
        .repr()
        .map_or_else(|_| "<unprintable>".to_string(), |r| r.to_string());
    if obj.is_instance_of::<PyInt>() && text.len() > 15 {
        let digits = text.trim_start_matches('-').len();
        return format!("{text:.3}... (an int of {digits} digits)");
    }
    if text.chars().count() > 60 {
        let cut: String = text.chars().take(57).collect();
        format!("{cut}...")
    } else {
        text
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".to_string(), |n| n.to_string())
}

/// A whole number argument in `lo..=hi` (`what` says the unit or purpose). Python `int` and
/// integer numpy scalars are taken; `bool`, `float` and anything else are refused.
pub(crate) fn whole<T: TryFrom<i128>>(
    obj: &Bound<'_, PyAny>,
    name: &str,
    lo: i128,
    hi: i128,
    what: &str,
) -> PyResult<T> {
    let py = obj.py();
    let expected = format!("{name} must be a whole number of {what} in {lo}..={hi}");
    if obj.is_instance_of::<PyBool>() || obj.is_instance_of::<PyFloat>() {
        return Err(error(
            py,
            Class::ArgumentType,
            format!(
                "{expected}, got {} ({}); pass an int",
                show(obj),
                type_name(obj)
            ),
        ));
    }
    let value = match obj.extract::<i128>() {
        Ok(v) => v,
        // An int too large even for i128 is out of range, not of the wrong type.
        Err(_) if obj.is_instance_of::<PyInt>() => i128::MAX,
        Err(_) => {
            return Err(error(
                py,
                Class::ArgumentType,
                format!("{expected}, got {} ({})", show(obj), type_name(obj)),
            ))
        }
    };
    if value < lo || value > hi {
        return Err(error(
            py,
            Class::InvalidInput,
            format!("{expected}, got {}", show(obj)),
        ));
    }
    T::try_from(value).map_err(|_| {
        error(
            py,
            Class::InvalidInput,
            format!("{expected}, got {}", show(obj)),
        )
    })
}

/// A finite real number argument (int or float, not bool); ranges are the engine's to check.
pub(crate) fn finite(obj: &Bound<'_, PyAny>, name: &str, what: &str) -> PyResult<f64> {
    let py = obj.py();
    let value = if obj.is_instance_of::<PyBool>() {
        None
    } else if obj.is_instance_of::<PyInt>() {
        Some(obj.extract::<f64>().unwrap_or(f64::INFINITY))
    } else {
        obj.extract::<f64>().ok()
    };
    match value {
        Some(v) if v.is_finite() => Ok(v),
        Some(_) => Err(error(
            py,
            Class::InvalidInput,
            format!(
                "{name} must be a finite number of {what}, got {}",
                show(obj)
            ),
        )),
        None => Err(error(
            py,
            Class::ArgumentType,
            format!(
                "{name} must be a number of {what} (int or float), got {} ({})",
                show(obj),
                type_name(obj)
            ),
        )),
    }
}

/// A flag: `True` or `False` (or a numpy bool), nothing merely truthy.
pub(crate) fn flag(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<bool> {
    obj.extract::<bool>().map_err(|_| {
        error(
            obj.py(),
            Class::ArgumentType,
            format!(
                "{name} must be True or False, got {} ({})",
                show(obj),
                type_name(obj)
            ),
        )
    })
}

/// A timeout in seconds: `None` (wait as long as it takes) or a finite number in
/// `0..=MAX_TIMEOUT_S`.
pub(crate) fn timeout_from(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Duration>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    let py = obj.py();
    let range = format!(
        "timeout must be None (wait as long as it takes) or a number of seconds in \
         0..={MAX_TIMEOUT_S:e}"
    );
    let seconds = if obj.is_instance_of::<PyBool>() {
        None
    } else if obj.is_instance_of::<PyInt>() {
        // An int too large for a float is simply out of range.
        Some(obj.extract::<f64>().unwrap_or(f64::INFINITY))
    } else {
        obj.extract::<f64>().ok()
    };
    match seconds {
        Some(s) if (0.0..=MAX_TIMEOUT_S).contains(&s) => Ok(Some(Duration::from_secs_f64(s))),
        Some(_) => Err(error(
            py,
            Class::InvalidInput,
            format!(
                "{range}, got {}; pass None to wait without a limit",
                show(obj)
            ),
        )),
        None => Err(error(
            py,
            Class::ArgumentType,
            format!("{range}, got {} ({})", show(obj), type_name(obj)),
        )),
    }
}

/// Copies 16-bit PCM from `bytes`, `bytearray` or a 1-D `numpy.int16` array.
pub(crate) fn pcm_from(obj: &Bound<'_, PyAny>) -> PyResult<Vec<i16>> {
    let py = obj.py();
    let from_bytes = |b: &[u8]| -> PyResult<Vec<i16>> {
        if b.len() % 2 != 0 {
            return Err(error(
                py,
                Class::InvalidInput,
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
            return Err(error(
                py,
                Class::InvalidInput,
                format!(
                    "PCM arrays must be 1-D (mono samples), got shape {:?}; take one channel or \
                 average them first",
                    arr.shape()
                ),
            ));
        }
        let Ok(typed) = arr.cast::<PyArray1<i16>>() else {
            return Err(error(py, Class::PcmType, format!(
                "PCM arrays must have dtype int16, got {dtype}; convert integer audio with \
                 x.astype(numpy.int16) and float audio in [-1, 1] with (x * 32767).astype(numpy.int16)"
            )));
        };
        let ro = typed.try_readonly()?;
        return Ok(ro.as_array().to_vec());
    }
    Err(error(
        py,
        Class::PcmType,
        format!(
            "expected bytes, bytearray or a numpy.int16 array of PCM, got {}",
            obj.get_type().name()?
        ),
    ))
}

/// A device argument (`name` is `input_device` or `output_device`): None (the default
/// device), False (disabled), an index or a name from `duplex.devices()`.
pub(crate) fn selector(obj: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<DeviceSelector> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(DeviceSelector::Default);
    };
    let py = obj.py();
    let takes = "None (the default device), False (none), or an index or a name from \
                 duplex.devices()";
    if obj.is_instance_of::<PyBool>() {
        if obj.is_truthy()? {
            return Err(error(
                py,
                Class::ArgumentType,
                format!("{name}=True is not a device; {name} takes {takes}"),
            ));
        }
        return Ok(DeviceSelector::Disabled);
    }
    let integer = obj.is_instance_of::<PyInt>()
        || (!obj.is_instance_of::<PyFloat>() && obj.extract::<i128>().is_ok());
    if integer {
        return match obj
            .extract::<i128>()
            .ok()
            .and_then(|i| usize::try_from(i).ok())
        {
            Some(i) => Ok(DeviceSelector::Index(i)),
            None => Err(error(
                py,
                Class::InvalidInput,
                format!(
                    "{name} index must be >= 0, got {}; {name} takes {takes} (index -1 in that \
                     list is the virtual device: pass backend='virtual' for it)",
                    show(obj)
                ),
            )),
        };
    }
    if let Ok(device) = obj.extract::<String>() {
        return Ok(DeviceSelector::Name(device));
    }
    Err(error(
        py,
        Class::ArgumentType,
        format!(
            "{name} takes {takes}, got {} ({})",
            show(obj),
            type_name(obj)
        ),
    ))
}

/// The `latency` argument: `"low"` (20 ms of device buffer), `"high"` (the default: 150 ms on
/// the native PulseAudio host, 80 ms on ALSA)
/// or a number of milliseconds in 4..=1000. `None` is the default. A number below 4 is
/// most likely seconds (python-sounddevice's unit), and the message says so.
pub(crate) fn latency_from(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Latency> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(Latency::default());
    };
    let py = obj.py();
    let takes = "latency must be 'low' (20 ms of device buffer), 'high' (150 ms on the native \
                 PulseAudio host, 80 ms on ALSA) or a number of milliseconds in 4..=1000";
    if let Ok(text) = obj.extract::<String>() {
        return match text.as_str() {
            "low" => Ok(Latency::Low),
            "high" => Ok(Latency::High),
            _ => Err(error(
                py,
                Class::InvalidInput,
                format!(
                    "{takes}, got {}; a number is passed as a number, not a string",
                    show(obj)
                ),
            )),
        };
    }
    if obj.is_instance_of::<PyBool>() {
        return Err(error(
            py,
            Class::ArgumentType,
            format!("{takes}, got {} (bool)", show(obj)),
        ));
    }
    let ms = finite(obj, "latency", "milliseconds of device buffer")?;
    Latency::from_ms(ms).map_err(|_| {
        let hint = if ms > 0.0 && ms < 4.0 {
            format!(
                "; {ms} looks like seconds (python-sounddevice's unit): pass {} for that",
                ms * 1000.0
            )
        } else {
            String::new()
        };
        error(
            py,
            Class::InvalidInput,
            format!("{takes}, got {}{hint}", show(obj)),
        )
    })
}

/// The `host` argument: `"auto"`, `"pulse"` or `"alsa"` (`None` is the default host).
/// Anything else, or a non-string, is refused naming the argument.
pub(crate) fn host_from(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Host> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(Host::default());
    };
    let py = obj.py();
    let takes = "host must be 'auto' (the native PulseAudio client where a server answers, \
                 else ALSA), 'pulse' or 'alsa'";
    match obj.extract::<String>() {
        Ok(text) => Host::parse(&text).map_err(|_| {
            error(
                py,
                Class::InvalidInput,
                format!("{takes}, got {}", show(obj)),
            )
        }),
        Err(_) => Err(error(
            py,
            Class::ArgumentType,
            format!("{takes}, got {} ({})", show(obj), type_name(obj)),
        )),
    }
}

/// The name Python uses for a latency: `"low"`, `"high"` or the milliseconds.
pub(crate) fn latency_name(py: Python<'_>, latency: Latency) -> PyResult<Bound<'_, PyAny>> {
    Ok(match latency {
        Latency::Low => "low".into_pyobject(py)?.into_any(),
        Latency::High => "high".into_pyobject(py)?.into_any(),
        Latency::Ms(ms) => ms.into_pyobject(py)?.into_any(),
    })
}
