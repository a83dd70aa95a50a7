//! `duplex._engine`: the Python bindings of `duplex-engine`.
//!
//! This crate only converts Python objects to engine calls and back, maps engine errors to
//! the exception classes of `duplex.errors`, and releases the GIL around every call that may
//! wait or do more than a copy. It holds no audio logic. By concern:
//!
//! * [`engine`]: the `Engine` class;
//! * [`args`]: arguments in (timeouts, PCM, device selectors, virtual device options);
//! * [`types`]: engine records out (stats, interrupt reports, device info), generically;
//! * [`virtual_options`]: the virtual device's options, read strictly;
//! * [`types`]: engine records out (stats, interrupt reports, device info), generically;
//! * [`errors`]: the exception classes (re-exported by `duplex.errors`), engine errors and
//!   panics mapped to them.
//!
//! Every entry point runs inside [`errors::guard`]: no Rust panic reaches Python as
//! `PanicException`; it becomes `duplex.errors.EngineInternalError`.

mod args;
mod engine;
mod errors;
mod types;
mod virtual_options;

use duplex_engine::{DeviceEvent, DeviceInfo, DeviceParams, InterruptReport, Stats};
use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::args::whole;
use crate::engine::PyEngine;
use crate::errors::{error, guard, to_py_err, Class};
use crate::types::{field_kinds, to_dict};

/// Lists real audio devices as dicts (cpal's default host).
#[pyfunction]
fn list_devices<'py>(py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
    guard(py, "list_devices()", || {
        let infos = py
            .detach(duplex_engine::list_devices)
            .map_err(|e| to_py_err(py, e))?;
        infos.iter().map(|info| to_dict(py, info)).collect()
    })
}

/// Resamples a whole mono float32 clip from `from_hz` to `to_hz` with the engine's
/// resampler (time-aligned; the result has `len * to_hz / from_hz` samples): the block
/// resampler of the playback path, or with `low_latency=True` the capture path's filter.
#[pyfunction]
#[pyo3(signature = (samples, from_hz, to_hz, *, low_latency = false))]
fn resample<'py>(
    py: Python<'py>,
    samples: &Bound<'py, PyAny>,
    from_hz: &Bound<'py, PyAny>,
    to_hz: &Bound<'py, PyAny>,
    low_latency: bool,
) -> PyResult<Bound<'py, PyArray1<f32>>> {
    guard(py, "resample()", || {
        let from_hz: u32 = whole(from_hz, "from_hz", 1, 384_000, "Hz")?;
        let to_hz: u32 = whole(to_hz, "to_hz", 1, 384_000, "Hz")?;
        let arr = samples.cast::<PyArray1<f32>>().map_err(|_| {
            error(
                py,
                Class::ArgumentType,
                "resample() takes a 1-D numpy.float32 array",
            )
        })?;
        let input = arr.try_readonly()?.as_array().to_vec();
        let out = py
            .detach(|| {
                if low_latency {
                    duplex_engine::wav::resample_all_low_latency(&input, from_hz, to_hz)
                } else {
                    duplex_engine::wav::resample_all(&input, from_hz, to_hz)
                }
            })
            .map_err(|e| to_py_err(py, e))?;
        Ok(PyArray1::from_vec(py, out))
    })
}

/// Panics inside the guard that wraps every entry point. It exists so the tests can prove
/// that a panic anywhere reaches Python as `EngineInternalError`, never `PanicException`.
#[pyfunction]
fn _panic_for_tests(py: Python<'_>, message: String) -> PyResult<()> {
    guard(py, "_panic_for_tests()", || {
        // Also across a released GIL, as in the engine's waits.
        py.detach(|| -> PyResult<()> { panic!("{message}") })
    })
}

/// The native core of duplex.
#[pymodule]
fn _engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<PyEngine>()?;
    m.add_function(wrap_pyfunction!(list_devices, m)?)?;
    m.add_function(wrap_pyfunction!(resample, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    m.add("MAX_TIMEOUT_S", args::MAX_TIMEOUT_S)?;
    m.add("CAPTURE_RATE_HZ", duplex_engine::CAPTURE_RATE_HZ)?;
    m.add("PLAY_RATE_HZ", duplex_engine::MODEL_RATE_HZ)?;
    // The Cargo workspace version: the one that maturin also writes into the package metadata.
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // The engine's field lists, so the typed Python records can be checked against them.
    m.add("STATS_FIELDS", field_kinds::<Stats>(m.py())?)?;
    m.add("INTERRUPT_FIELDS", field_kinds::<InterruptReport>(m.py())?)?;
    m.add("DEVICE_INFO_FIELDS", field_kinds::<DeviceInfo>(m.py())?)?;
    m.add("DEVICE_PARAMS_FIELDS", field_kinds::<DeviceParams>(m.py())?)?;
    m.add("DEVICE_EVENT_FIELDS", field_kinds::<DeviceEvent>(m.py())?)?;
    // The device buffer asked for unless `latency=` says otherwise ("high": see README).
    m.add(
        "DEFAULT_LATENCY",
        args::latency_name(m.py(), duplex_engine::DEFAULT_LATENCY)?,
    )?;
    // Every public name, errors included, so `from duplex._engine import *` and stubtest agree.
    let mut public: Vec<String> = m
        .dict()
        .keys()
        .iter()
        .filter_map(|k| k.extract::<String>().ok())
        .filter(|k| !k.starts_with('_'))
        .collect();
    public.sort();
    m.add("__all__", public)?;
    Ok(())
}
