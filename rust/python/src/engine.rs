//! `duplex._engine.Engine`: the engine handle that `duplex.AudioEngine` wraps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use duplex_engine::{Backend, CpalConfig, Engine, EngineConfig, EngineError, VirtualConfig};
use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::args::{pcm_from, selector, timeout_from, virtual_config};
use crate::errors::{playback_full, to_py_err};
use crate::types::to_dict;

/// Longest the GIL stays released in one go while waiting, so Ctrl-C is noticed promptly.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// The engine handle. Use `duplex.AudioEngine`, which wraps this with a friendlier API.
#[pyclass(module = "duplex._engine", name = "Engine")]
pub(crate) struct PyEngine {
    engine: Arc<Engine>,
}

impl PyEngine {
    /// Runs `step` with the GIL released in slices of at most `SIGNAL_CHECK`, checking for
    /// signals (Ctrl-C) between slices, until it returns `Some` or the timeout passes.
    fn wait_loop<T: Send>(
        &self,
        py: Python<'_>,
        timeout: Option<Duration>,
        mut step: impl FnMut(&Engine, Duration) -> Result<Option<T>, EngineError> + Send,
    ) -> PyResult<Option<T>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let slice = deadline.map_or(SIGNAL_CHECK, |d| {
                d.saturating_duration_since(Instant::now())
                    .min(SIGNAL_CHECK)
            });
            let engine = Arc::clone(&self.engine);
            let result = py.detach(|| step(&engine, slice));
            match result {
                Ok(Some(v)) => return Ok(Some(v)),
                Ok(None) => {}
                Err(EngineError::PlaybackFull(_))
                    if deadline.is_none_or(|d| Instant::now() < d) => {}
                Err(e) => return Err(to_py_err(py, e)),
            }
            py.check_signals()?;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
        }
    }
}

#[pymethods]
impl PyEngine {
    /// Creates a stopped engine. `backend` is "cpal" or "virtual" (then `virtual` holds the
    /// virtual device's options as a dict).
    #[new]
    #[pyo3(signature = (backend="cpal", *, input_device=None, output_device=None, sample_rate=None,
        period_frames=None, chunk_ms=20, prebuffer_ms=200, playback_buffer_ms=120_000,
        capture_buffer_ms=2_000, fade_ms=5.0, r#virtual=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        backend: &str,
        input_device: Option<&Bound<'_, PyAny>>,
        output_device: Option<&Bound<'_, PyAny>>,
        sample_rate: Option<u32>,
        period_frames: Option<u32>,
        chunk_ms: u32,
        prebuffer_ms: u32,
        playback_buffer_ms: u32,
        capture_buffer_ms: u32,
        fade_ms: f64,
        r#virtual: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let backend = match backend {
            "cpal" => Backend::Cpal(CpalConfig {
                input: selector(input_device)?,
                output: selector(output_device)?,
                sample_rate,
                period_frames,
            }),
            "virtual" => Backend::Virtual(match r#virtual {
                Some(d) => virtual_config(d)?,
                None => VirtualConfig::default(),
            }),
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown backend '{other}'; use 'cpal' (sound card or server) or 'virtual'"
                )))
            }
        };
        let config = EngineConfig {
            backend,
            chunk_ms,
            prebuffer_ms,
            playback_buffer_ms,
            capture_buffer_ms,
            fade_ms,
        };
        // Loading a virtual WAV input can take a moment: release the GIL.
        let engine = py
            .detach(|| Engine::new(config))
            .map_err(|e| to_py_err(py, e))?;
        Ok(Self {
            engine: Arc::new(engine),
        })
    }

    /// Opens the devices and starts the callbacks.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        let engine = Arc::clone(&self.engine);
        py.detach(|| engine.start()).map_err(|e| to_py_err(py, e))
    }

    /// Stops the callbacks; a virtual output WAV is complete when this returns.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let engine = Arc::clone(&self.engine);
        py.detach(|| engine.stop()).map_err(|e| to_py_err(py, e))
    }

    /// Stops for good.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let engine = Arc::clone(&self.engine);
        py.detach(|| engine.close()).map_err(|e| to_py_err(py, e))
    }

    /// Whether the devices are running.
    #[getter]
    fn running(&self) -> bool {
        self.engine.is_running()
    }

    /// Whether close() was called.
    #[getter]
    fn closed(&self) -> bool {
        self.engine.is_closed()
    }

    /// Frames per capture chunk (16 kHz).
    #[getter]
    fn chunk_frames(&self) -> usize {
        self.engine.chunk_frames()
    }

    /// Queues 24 kHz mono 16-bit PCM, waiting for room up to `timeout` seconds; raises
    /// PlaybackFullError (nothing queued) if the room did not come.
    #[pyo3(signature = (pcm, timeout=None))]
    fn play(&self, py: Python<'_>, pcm: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<()> {
        let samples = pcm_from(pcm)?;
        let timeout = timeout_from(timeout)?;
        match self.wait_loop(py, timeout, |e, slice| {
            e.play(&samples, Some(slice)).map(Some)
        })? {
            Some(()) => Ok(()),
            None => Err(to_py_err(
                py,
                playback_full(timeout, "the chunk was not queued (nothing was lost)"),
            )),
        }
    }

    /// Marks the current turn complete; raises PlaybackFullError if its tail found no room.
    #[pyo3(signature = (timeout=None))]
    fn end_turn(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let timeout = timeout_from(timeout)?;
        match self.wait_loop(py, timeout, |e, slice| e.end_turn(Some(slice)).map(Some))? {
            Some(()) => Ok(()),
            None => Err(to_py_err(
                py,
                playback_full(timeout, "the turn's tail was not queued"),
            )),
        }
    }

    /// Flushes playback; returns what the listener heard of the interrupted turn.
    fn interrupt<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let report = self.engine.interrupt().map_err(|e| to_py_err(py, e))?;
        to_dict(py, &report)
    }

    /// The next capture chunk as little-endian bytes, or None on timeout.
    #[pyo3(signature = (timeout=None))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let timeout = timeout_from(timeout)?;
        let chunk = self.wait_loop(py, timeout, |e, slice| e.read(Some(slice)))?;
        Ok(chunk.map(|c| {
            let bytes: Vec<u8> = c.iter().flat_map(|s| s.to_le_bytes()).collect();
            PyBytes::new(py, &bytes)
        }))
    }

    /// The next capture chunk as a numpy int16 array, or None on timeout.
    #[pyo3(signature = (timeout=None))]
    fn read_array<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Option<Bound<'py, PyArray1<i16>>>> {
        let timeout = timeout_from(timeout)?;
        let chunk = self.wait_loop(py, timeout, |e, slice| e.read(Some(slice)))?;
        Ok(chunk.map(|c| PyArray1::from_vec(py, c)))
    }

    /// Drops captured audio not read yet.
    fn clear_capture(&self, py: Python<'_>) -> PyResult<()> {
        self.engine.clear_capture().map_err(|e| to_py_err(py, e))
    }

    /// Every counter, as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        to_dict(py, &self.engine.stats())
    }

    /// The virtual device's recorded output as a float32 array of shape (frames, channels).
    fn recording<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let (samples, channels) = self.engine.recording();
        let channels = usize::from(channels.max(1));
        let frames = samples.len() / channels;
        let arr = PyArray1::from_vec(py, samples);
        arr.reshape([frames, channels])
    }

    /// Rates and channel counts the devices run at.
    fn device_params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        to_dict(py, &self.engine.device_params())
    }
}
