//! Engine errors as `duplex.errors` exceptions.
//!
//! Every engine error variant maps to one exception class; the message is the engine's,
//! which already says what was wrong and what to do.

use std::time::Duration;

use duplex_engine::EngineError;
use pyo3::prelude::*;

/// Raises the `duplex.errors` class that matches an engine error.
pub(crate) fn to_py_err(py: Python<'_>, err: EngineError) -> PyErr {
    let class = match &err {
        EngineError::InvalidInput(_) => "InvalidInputError",
        EngineError::ChunkTooLarge(_) => "ChunkTooLargeError",
        EngineError::PlaybackFull(_) => "PlaybackFullError",
        EngineError::Closed(_) => "EngineClosedError",
        EngineError::UnknownDevice(_) => "UnknownDeviceError",
        EngineError::Device(_) => "DeviceError",
        EngineError::Wav(_) => "WavFormatError",
    };
    py_error(py, class, err.to_string())
}

/// The error of a wait for playback room that ran out of time.
pub(crate) fn playback_full(timeout: Option<Duration>, what: &str) -> EngineError {
    EngineError::PlaybackFull(format!(
        "the playback buffer stayed full for {:.3} s; {what}. Wait for playback to catch up, \
         pass a longer timeout, or raise playback_buffer_ms",
        timeout.unwrap_or_default().as_secs_f64()
    ))
}

/// An instance of a `duplex.errors` class with `msg`.
pub(crate) fn py_error(py: Python<'_>, class: &str, msg: String) -> PyErr {
    match py
        .import("duplex.errors")
        .and_then(|m| m.getattr(class))
        .and_then(|c| c.call1((msg,)))
    {
        Ok(exc) => PyErr::from_value(exc),
        Err(import_failure) => import_failure,
    }
}
