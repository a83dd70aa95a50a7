//! The exception classes of duplex, created here, and engine errors (and panics) mapped to
//! them.
//!
//! Every class derives from `DuplexError` and from the built-in exception a Python
//! programmer would expect, so `except ValueError` keeps working; `duplex.errors`
//! re-exports them. Python classes with two bases cannot be made with `create_exception!`
//! (one base only), so they are made with `type(name, bases, namespace)` when the module
//! loads, and kept for the life of the interpreter.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use duplex_engine::EngineError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

/// One exception class: its name, its bases (earlier classes here, or built-ins), its doc.
struct Spec {
    name: &'static str,
    bases: &'static [&'static str],
    doc: &'static str,
}

/// Every class, bases first. The order of `Class` below follows it.
const SPECS: &[Spec] = &[
    Spec {
        name: "DuplexError",
        bases: &["Exception"],
        doc: "Base class of every error duplex raises on purpose.",
    },
    Spec {
        name: "InvalidInputError",
        bases: &["DuplexError", "ValueError"],
        doc: "An argument the engine cannot use (a bad rate, period, option, timeout or PCM \
              buffer). The message names the argument, its allowed range and what to do.",
    },
    Spec {
        name: "ArgumentTypeError",
        bases: &["DuplexError", "TypeError"],
        doc: "An argument of the wrong type (a float where a whole number is needed, a string \
              where a flag is). The message names the argument and the type it takes.",
    },
    Spec {
        name: "PcmTypeError",
        bases: &["DuplexError", "TypeError"],
        doc: "PCM of the wrong type: not bytes or a 1-D ``numpy.int16`` array.",
    },
    Spec {
        name: "ChunkTooLargeError",
        bases: &["DuplexError", "ValueError"],
        doc: "A playback chunk larger than the playback buffer could ever hold.",
    },
    Spec {
        name: "PlaybackFullError",
        bases: &["DuplexError", "TimeoutError"],
        doc: "The playback buffer stayed full for the whole timeout; nothing of the chunk was \
              queued.",
    },
    Spec {
        name: "EngineClosedError",
        bases: &["DuplexError", "RuntimeError"],
        doc: "A call on an engine that is stopped or closed.",
    },
    Spec {
        name: "EngineInternalError",
        bases: &["DuplexError", "RuntimeError"],
        doc: "A bug in duplex (the engine panicked). The call did nothing further; the engine \
              may be unusable. Please report it with the message.",
    },
    Spec {
        name: "DeviceError",
        bases: &["DuplexError", "OSError"],
        doc: "A device that cannot be opened or configured (no sound card, no sound server, \
              busy).",
    },
    Spec {
        name: "UnknownDeviceError",
        bases: &["DeviceError", "LookupError"],
        doc: "No device matches the name or index given.",
    },
    Spec {
        name: "DeviceLostError",
        bases: &["DeviceError"],
        doc: "The audio device was lost (the sound server died, the device was unplugged) \
              and did not come back within the call's timeout. The engine keeps its buffers \
              and reopens the device by itself; see ``AudioEngine.next_device_event``.",
    },
    Spec {
        name: "WavFormatError",
        bases: &["DuplexError", "ValueError"],
        doc: "A WAV file that is missing, damaged, or in a format the virtual device cannot \
              use.",
    },
];

/// The classes by name, in the order of [`SPECS`].
#[derive(Debug, Clone, Copy)]
#[allow(dead_code)] // every variant exists in Python; not all are raised from Rust
pub(crate) enum Class {
    Duplex,
    InvalidInput,
    ArgumentType,
    PcmType,
    ChunkTooLarge,
    PlaybackFull,
    EngineClosed,
    EngineInternal,
    Device,
    UnknownDevice,
    DeviceLost,
    WavFormat,
}

static CLASSES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

/// Creates the classes (once) and adds them to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let classes = CLASSES.get_or_try_init(py, || create(py))?;
    for (spec, class) in SPECS.iter().zip(classes) {
        m.add(spec.name, class.bind(py))?;
    }
    Ok(())
}

fn create(py: Python<'_>) -> PyResult<Vec<Py<PyType>>> {
    let builtins = py.import("builtins")?;
    let type_ = builtins.getattr("type")?;
    let mut made: Vec<Py<PyType>> = Vec::with_capacity(SPECS.len());
    for spec in SPECS {
        let bases = spec
            .bases
            .iter()
            .map(|base| match SPECS.iter().position(|s| s.name == *base) {
                Some(i) => Ok(made[i].bind(py).clone().into_any()),
                None => builtins.getattr(*base),
            })
            .collect::<PyResult<Vec<_>>>()?;
        let namespace = PyDict::new(py);
        namespace.set_item("__doc__", spec.doc)?;
        // Tracebacks, reprs and pickle name the public module that re-exports them.
        namespace.set_item("__module__", "duplex.errors")?;
        let class = type_.call1((spec.name, PyTuple::new(py, bases)?, namespace))?;
        made.push(class.cast_into::<PyType>()?.unbind());
    }
    Ok(made)
}

/// An instance of `class` with `msg`, as an error to raise.
pub(crate) fn error(py: Python<'_>, class: Class, msg: impl Into<String>) -> PyErr {
    let msg = msg.into();
    match CLASSES.get(py) {
        Some(classes) => match classes[class as usize].bind(py).call1((msg,)) {
            Ok(exc) => PyErr::from_value(exc),
            Err(e) => e,
        },
        // Cannot happen once the module is loaded; never panic about it either.
        None => pyo3::exceptions::PyRuntimeError::new_err(msg),
    }
}

/// Raises the class that matches an engine error, with the engine's message.
pub(crate) fn to_py_err(py: Python<'_>, err: EngineError) -> PyErr {
    let class = match &err {
        EngineError::InvalidInput(_) => Class::InvalidInput,
        EngineError::ChunkTooLarge(_) => Class::ChunkTooLarge,
        EngineError::PlaybackFull(_) => Class::PlaybackFull,
        EngineError::Closed(_) => Class::EngineClosed,
        EngineError::UnknownDevice(_) => Class::UnknownDevice,
        EngineError::Device(_) => Class::Device,
        EngineError::DeviceLost(_) => Class::DeviceLost,
        EngineError::Wav(_) => Class::WavFormat,
    };
    error(py, class, err.to_string())
}

/// Runs one entry point of the module and turns a Rust panic inside it into
/// `EngineInternalError`, so no `PanicException` (which `except Exception` misses) ever
/// reaches Python. Every `#[pymethods]` and `#[pyfunction]` body runs in here.
pub(crate) fn guard<T>(
    py: Python<'_>,
    what: &str,
    body: impl FnOnce() -> PyResult<T>,
) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(payload) => Err(error(
            py,
            Class::EngineInternal,
            format!(
                "internal error in {what}: {} (a bug in duplex; please report it with this \
                 message). The engine may be unusable: close it and create a new one",
                panic_message(payload.as_ref())
            ),
        )),
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("the engine panicked")
}
