//! `duplex._engine`: the Python bindings of `duplex-engine`.
//!
//! This crate only converts Python objects to engine calls and back, maps engine errors to
//! the exception classes of `duplex.errors`, and releases the GIL around every call that may
//! wait or do more than a copy. It holds no audio logic.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use duplex_engine::{
    Backend, CpalConfig, DeviceSelector, Engine, EngineConfig, EngineError, VirtualConfig,
    VirtualInput, VirtualOutput,
};
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict};

/// Longest the GIL stays released in one go while waiting, so Ctrl-C is noticed promptly.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// Raises the `duplex.errors` class that matches an engine error.
fn to_py_err(py: Python<'_>, err: EngineError) -> PyErr {
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

fn playback_full(timeout: Option<Duration>, what: &str) -> EngineError {
    EngineError::PlaybackFull(format!(
        "the playback buffer stayed full for {:.3} s; {what}. Wait for playback to catch up, \
         pass a longer timeout, or raise playback_buffer_ms",
        timeout.unwrap_or_default().as_secs_f64()
    ))
}

/// An instance of a `duplex.errors` class with `msg`.
fn py_error(py: Python<'_>, class: &str, msg: String) -> PyErr {
    match py
        .import("duplex.errors")
        .and_then(|m| m.getattr(class))
        .and_then(|c| c.call1((msg,)))
    {
        Ok(exc) => PyErr::from_value(exc),
        Err(import_failure) => import_failure,
    }
}

fn timeout_from(seconds: Option<f64>) -> PyResult<Option<Duration>> {
    match seconds {
        None => Ok(None),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(PyValueError::new_err(format!(
            "timeout must be None or a number of seconds >= 0, got {s}"
        ))),
    }
}

/// Copies 16-bit PCM from `bytes`, `bytearray` or a 1-D `numpy.int16` array.
fn pcm_from(obj: &Bound<'_, PyAny>) -> PyResult<Vec<i16>> {
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

fn selector(obj: Option<&Bound<'_, PyAny>>) -> PyResult<DeviceSelector> {
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

fn virtual_config(d: &Bound<'_, PyDict>) -> PyResult<VirtualConfig> {
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

/// The engine handle. Use `duplex.AudioEngine`, which wraps this with a friendlier API.
#[pyclass(module = "duplex._engine", name = "Engine")]
struct PyEngine {
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
        let r = self.engine.interrupt().map_err(|e| to_py_err(py, e))?;
        let d = PyDict::new(py);
        d.set_item("heard_ms", r.heard_ms())?;
        d.set_item("heard_frames", r.heard_frames)?;
        d.set_item("received_ms", r.received_ms())?;
        d.set_item("discarded_ms", r.discarded_ms)?;
        Ok(d)
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
        let s = self.engine.stats();
        let d = PyDict::new(py);
        macro_rules! put {
            ($($field:ident),* $(,)?) => { $( d.set_item(stringify!($field), s.$field.clone())?; )* };
        }
        put!(
            input_rate_hz,
            output_rate_hz,
            input_channels,
            output_channels,
            period_frames,
            frames_captured,
            capture_overflows,
            capture_overflow_frames,
            chunks_read,
            frames_played,
            frames_rendered,
            underruns,
            underrun_silence_ms,
            flushes,
            flushed_ms,
            output_callbacks,
            input_callbacks,
            callback_p50_us,
            callback_p99_us,
            callback_max_us,
            input_callback_p99_us,
            input_callback_max_us,
            jitter_p99_ms,
            jitter_max_ms,
            input_jitter_p99_ms,
            input_jitter_max_ms,
            playback_buffered_ms,
            capture_buffered_ms,
            input_rms_dbfs,
            input_peak_dbfs,
            output_rms_dbfs,
            output_peak_dbfs,
            device_errors,
            device_error_callbacks,
            last_device_error,
            turn_played_ms,
            turn_received_ms,
        );
        d.set_item("input_ended", self.engine.input_ended())?;
        Ok(d)
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
        let p = self.engine.device_params();
        let d = PyDict::new(py);
        d.set_item("input_rate_hz", p.input_rate)?;
        d.set_item("output_rate_hz", p.output_rate)?;
        d.set_item("input_channels", p.input_channels)?;
        d.set_item("output_channels", p.output_channels)?;
        d.set_item("period_frames", p.period_frames)?;
        Ok(d)
    }
}

/// Lists real audio devices as dicts (cpal's default host).
#[pyfunction]
fn list_devices<'py>(py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let infos = py
        .detach(duplex_engine::list_devices)
        .map_err(|e| to_py_err(py, e))?;
    infos
        .into_iter()
        .map(|i| {
            let d = PyDict::new(py);
            d.set_item("index", i.index)?;
            d.set_item("id", i.id)?;
            d.set_item("name", i.name)?;
            d.set_item("host", i.host)?;
            d.set_item("input_channels", i.input_channels)?;
            d.set_item("output_channels", i.output_channels)?;
            d.set_item("default_rate_hz", i.default_rate_hz)?;
            d.set_item("is_default_input", i.is_default_input)?;
            d.set_item("is_default_output", i.is_default_output)?;
            Ok(d)
        })
        .collect()
}

/// Resamples a whole mono float32 clip from `from_hz` to `to_hz` with the engine's
/// resampler (time-aligned; the result has `len * to_hz / from_hz` samples).
#[pyfunction]
fn resample<'py>(
    py: Python<'py>,
    samples: &Bound<'py, PyAny>,
    from_hz: u32,
    to_hz: u32,
) -> PyResult<Bound<'py, PyArray1<f32>>> {
    let arr = samples
        .cast::<PyArray1<f32>>()
        .map_err(|_| PyTypeError::new_err("resample() takes a 1-D numpy.float32 array"))?;
    let input = arr.try_readonly()?.as_array().to_vec();
    let out = py
        .detach(|| duplex_engine::wav::resample_all(&input, from_hz, to_hz))
        .map_err(|e| to_py_err(py, e))?;
    Ok(PyArray1::from_vec(py, out))
}

/// The native core of duplex.
#[pymodule]
fn _engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyEngine>()?;
    m.add_function(wrap_pyfunction!(list_devices, m)?)?;
    m.add_function(wrap_pyfunction!(resample, m)?)?;
    m.add("CAPTURE_RATE_HZ", duplex_engine::CAPTURE_RATE_HZ)?;
    m.add("PLAY_RATE_HZ", duplex_engine::MODEL_RATE_HZ)?;
    Ok(())
}
