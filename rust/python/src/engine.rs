//! `duplex._engine.Engine`: the engine handle that `duplex.AudioEngine` wraps.
//!
//! Every method body runs inside [`guard`], so a panic becomes `EngineInternalError`; every
//! call that can wait goes through [`PyEngine::wait`], the engine's one wait loop with the
//! GIL released and Ctrl-C checked between sleeps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use duplex_engine::callback::MAX_BLOCK_FRAMES;
use duplex_engine::wait::playback_full;
use duplex_engine::{
    wait_for, AecBackend, AecOptions, Attempt, Backend, CpalConfig, Engine, EngineConfig,
    EngineError, VirtualConfig,
};
use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::args::{
    finite, flag, host_from, latency_from, pcm_from, selector, show, timeout_from, whole,
};
use crate::errors::{error, guard, to_py_err, Class};
use crate::types::to_dict;
use crate::virtual_options::virtual_config;

/// How often a wait takes the GIL back to check for signals (Ctrl-C).
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// Why a wait ended early: the engine refused, or Python has an exception (Ctrl-C).
enum WaitError {
    Engine(EngineError),
    Python(PyErr),
}

impl From<EngineError> for WaitError {
    fn from(e: EngineError) -> Self {
        WaitError::Engine(e)
    }
}

/// An optional whole-number argument in `lo..=hi`.
fn opt_whole(
    obj: Option<&Bound<'_, PyAny>>,
    name: &str,
    lo: i128,
    hi: i128,
    what: &str,
) -> PyResult<Option<u32>> {
    obj.filter(|o| !o.is_none())
        .map(|o| whole(o, name, lo, hi, what))
        .transpose()
}

/// The engine handle. Use `duplex.AudioEngine`, which wraps this with a friendlier API.
#[pyclass(module = "duplex._engine", name = "Engine", frozen)]
pub(crate) struct PyEngine {
    engine: Arc<Engine>,
}

impl PyEngine {
    /// Runs the non-blocking `attempt` in the engine's wait loop with the GIL released,
    /// taking it back every `SIGNAL_CHECK` to check for Ctrl-C (which ends the wait with
    /// `KeyboardInterrupt`). `Ok(None)` when `timeout` passed first.
    fn wait<T: Send>(
        &self,
        py: Python<'_>,
        timeout: Option<Duration>,
        what: &str,
        attempt: impl Fn(&Engine) -> Result<Attempt<T>, EngineError> + Send + Sync,
    ) -> PyResult<Option<T>> {
        let engine = Arc::clone(&self.engine);
        let result = py.detach(|| {
            let mut checked = Instant::now();
            wait_for(
                timeout,
                what,
                || attempt(&engine),
                || {
                    if checked.elapsed() < SIGNAL_CHECK {
                        return Ok(());
                    }
                    checked = Instant::now();
                    Python::attach(|py| py.check_signals()).map_err(WaitError::Python)
                },
            )
        });
        result.map_err(|e| match e {
            WaitError::Engine(e) => to_py_err(py, e),
            WaitError::Python(e) => e,
        })
    }

    /// The next capture chunk within `timeout`, `None` on a plain timeout; a device lost for
    /// the whole timeout is an error.
    fn read_chunk(
        &self,
        py: Python<'_>,
        timeout: Option<Duration>,
        what: &str,
    ) -> PyResult<Option<Vec<i16>>> {
        let started = Instant::now();
        match self.wait(py, timeout, what, Engine::try_read)? {
            Some(chunk) => Ok(Some(chunk)),
            None => match self.engine.read_timed_out(started.elapsed()) {
                Some(lost) => Err(to_py_err(py, lost)),
                None => Ok(None),
            },
        }
    }

    /// Runs a short engine call with the GIL released.
    fn detached<T: Send>(
        &self,
        py: Python<'_>,
        call: impl FnOnce(&Engine) -> Result<T, EngineError> + Send,
    ) -> PyResult<T> {
        let engine = Arc::clone(&self.engine);
        py.detach(|| call(&engine)).map_err(|e| to_py_err(py, e))
    }
}

#[pymethods]
impl PyEngine {
    /// Creates a stopped engine. `backend` is "cpal" (the default) or "virtual" (then `virtual` holds the
    /// virtual device's options as a dict). Numbers are read strictly: a wrong type raises
    /// `ArgumentTypeError`, a value out of range `InvalidInputError`, naming the argument.
    #[new]
    #[pyo3(signature = (backend=None, *, input_device=None, output_device=None, sample_rate=None,
        period_frames=None, latency=None, realtime=None, host=None, chunk_ms=None, prebuffer_ms=None,
        playback_buffer_ms=None, capture_buffer_ms=None, fade_ms=None, r#virtual=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        backend: Option<&Bound<'_, PyAny>>,
        input_device: Option<&Bound<'_, PyAny>>,
        output_device: Option<&Bound<'_, PyAny>>,
        sample_rate: Option<&Bound<'_, PyAny>>,
        period_frames: Option<&Bound<'_, PyAny>>,
        latency: Option<&Bound<'_, PyAny>>,
        realtime: Option<&Bound<'_, PyAny>>,
        host: Option<&Bound<'_, PyAny>>,
        chunk_ms: Option<&Bound<'_, PyAny>>,
        prebuffer_ms: Option<&Bound<'_, PyAny>>,
        playback_buffer_ms: Option<&Bound<'_, PyAny>>,
        capture_buffer_ms: Option<&Bound<'_, PyAny>>,
        fade_ms: Option<&Bound<'_, PyAny>>,
        r#virtual: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        guard(py, "Engine()", || {
            let base = EngineConfig::default();
            let name = backend.map_or(Ok("cpal".to_string()), |b| b.extract::<String>());
            let backend_repr = backend.map_or_else(|| "None".to_string(), show);
            let backend = match name.as_deref() {
                Ok("cpal") => Backend::Cpal(CpalConfig {
                    host: host_from(host)?,
                    input: selector(input_device, "input_device")?,
                    output: selector(output_device, "output_device")?,
                    sample_rate: opt_whole(sample_rate, "sample_rate", 8_000, 384_000, "Hz")?,
                    period_frames: opt_whole(
                        period_frames,
                        "period_frames",
                        16,
                        MAX_BLOCK_FRAMES as i128,
                        "frames per callback",
                    )?,
                    latency: latency_from(latency)?,
                    realtime: realtime
                        .filter(|o| !o.is_none())
                        .map(|o| flag(o, "realtime"))
                        .transpose()?
                        .unwrap_or(true),
                }),
                Ok("virtual") => Backend::Virtual(match r#virtual {
                    Some(d) => virtual_config(d)?,
                    None => VirtualConfig::default(),
                }),
                _ => {
                    return Err(error(
                        py,
                        Class::InvalidInput,
                        format!(
                            "unknown backend {}; use 'cpal' (sound card or server) or 'virtual'",
                            backend_repr
                        ),
                    ))
                }
            };
            let ms = |obj: Option<&Bound<'_, PyAny>>, name: &str, lo, hi, default: u32| {
                opt_whole(obj, name, lo, hi, "milliseconds").map(|v| v.unwrap_or(default))
            };
            let config = EngineConfig {
                backend,
                chunk_ms: ms(chunk_ms, "chunk_ms", 10, 1_000, base.chunk_ms)?,
                prebuffer_ms: ms(prebuffer_ms, "prebuffer_ms", 0, 10_000, base.prebuffer_ms)?,
                playback_buffer_ms: ms(
                    playback_buffer_ms,
                    "playback_buffer_ms",
                    100,
                    3_600_000,
                    base.playback_buffer_ms,
                )?,
                capture_buffer_ms: ms(
                    capture_buffer_ms,
                    "capture_buffer_ms",
                    100,
                    600_000,
                    base.capture_buffer_ms,
                )?,
                fade_ms: fade_ms
                    .filter(|o| !o.is_none())
                    .map(|o| finite(o, "fade_ms", "milliseconds"))
                    .transpose()?
                    .unwrap_or(base.fade_ms),
            };
            // Loading a virtual WAV input can take a moment: release the GIL.
            let engine = py
                .detach(|| Engine::new(config))
                .map_err(|e| to_py_err(py, e))?;
            Ok(Self {
                engine: Arc::new(engine),
            })
        })
    }

    /// Opens the devices and starts the callbacks.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        guard(py, "start()", || self.detached(py, |e| e.start()))
    }

    /// Stops the callbacks; a virtual output WAV is complete when this returns.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        guard(py, "stop()", || self.detached(py, |e| e.stop()))
    }

    /// Stops for good.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        guard(py, "close()", || self.detached(py, |e| e.close()))
    }

    /// Whether the devices are running.
    #[getter]
    fn running(&self, py: Python<'_>) -> PyResult<bool> {
        guard(py, "running", || Ok(self.engine.is_running()))
    }

    /// Whether close() was called.
    #[getter]
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        guard(py, "closed", || Ok(self.engine.is_closed()))
    }

    /// Frames per capture chunk (16 kHz).
    #[getter]
    fn chunk_frames(&self, py: Python<'_>) -> PyResult<usize> {
        guard(py, "chunk_frames", || Ok(self.engine.chunk_frames()))
    }

    /// Whether capture dropped audio before the last chunk read (the reader fell behind).
    #[getter]
    fn overflowed(&self, py: Python<'_>) -> PyResult<bool> {
        guard(py, "overflowed", || Ok(self.engine.overflowed()))
    }

    /// Queues 24 kHz mono 16-bit PCM, waiting for room up to `timeout` seconds; raises
    /// PlaybackFullError (nothing queued) if the room did not come.
    #[pyo3(signature = (pcm, timeout=None))]
    fn play(
        &self,
        py: Python<'_>,
        pcm: &Bound<'_, PyAny>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        guard(py, "play()", || {
            let samples = pcm_from(pcm)?;
            let timeout = timeout_from(timeout)?;
            let started = Instant::now();
            self.wait(py, timeout, "play()", |e| e.try_play(&samples))?
                .ok_or_else(|| {
                    to_py_err(py, self.engine.play_timed_out(timeout, started.elapsed()))
                })
        })
    }

    /// Marks the current turn complete; raises PlaybackFullError if its tail found no room.
    #[pyo3(signature = (timeout=None))]
    fn end_turn(&self, py: Python<'_>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        guard(py, "end_turn()", || {
            let timeout = timeout_from(timeout)?;
            self.wait(py, timeout, "end_turn()", Engine::try_end_turn)?
                .ok_or_else(|| {
                    to_py_err(
                        py,
                        playback_full(timeout, "end_turn() could not queue the turn's tail"),
                    )
                })
        })
    }

    /// Ends the turn and waits until everything queued has played, up to `timeout`;
    /// returns False if audio was still queued then.
    #[pyo3(signature = (timeout=None))]
    fn drain(&self, py: Python<'_>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        guard(py, "drain()", || {
            let timeout = timeout_from(timeout)?;
            Ok(self
                .wait(py, timeout, "drain()", Engine::try_drain)?
                .is_some())
        })
    }

    /// Flushes playback; returns what the listener heard of the interrupted turn.
    fn interrupt<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        guard(py, "interrupt()", || {
            let report = self.engine.interrupt().map_err(|e| to_py_err(py, e))?;
            to_dict(py, &report)
        })
    }

    /// The next capture chunk as little-endian bytes, or None on timeout.
    #[pyo3(signature = (timeout=None))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        guard(py, "read()", || {
            let timeout = timeout_from(timeout)?;
            let chunk = self.read_chunk(py, timeout, "read()")?;
            Ok(chunk.map(|c| {
                let bytes: Vec<u8> = c.iter().flat_map(|s| s.to_le_bytes()).collect();
                PyBytes::new(py, &bytes)
            }))
        })
    }

    /// The next capture chunk as a numpy int16 array, or None on timeout.
    #[pyo3(signature = (timeout=None))]
    fn read_array<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyArray1<i16>>>> {
        guard(py, "read_array()", || {
            let timeout = timeout_from(timeout)?;
            let chunk = self.read_chunk(py, timeout, "read_array()")?;
            Ok(chunk.map(|c| PyArray1::from_vec(py, c)))
        })
    }

    /// Drops captured audio not read yet.
    fn clear_capture(&self, py: Python<'_>) -> PyResult<()> {
        guard(py, "clear_capture()", || {
            self.engine.clear_capture().map_err(|e| to_py_err(py, e))
        })
    }

    /// The oldest device event not taken yet, as a dict, waiting up to `timeout` seconds
    /// (`None` = until one comes) with the GIL released; `None` on timeout.
    #[pyo3(signature = (timeout=None))]
    fn next_device_event<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        guard(py, "next_device_event()", || {
            let timeout = timeout_from(timeout)?;
            let started = Instant::now();
            loop {
                // In slices, so Ctrl-C ends a long wait.
                let slice = timeout.map_or(SIGNAL_CHECK, |t| {
                    t.saturating_sub(started.elapsed()).min(SIGNAL_CHECK)
                });
                let engine = Arc::clone(&self.engine);
                if let Some(event) = py.detach(move || engine.next_device_event(Some(slice))) {
                    return to_dict(py, &event).map(Some);
                }
                if timeout.is_some_and(|t| started.elapsed() >= t) {
                    return Ok(None);
                }
                py.check_signals()?;
            }
        })
    }

    /// Every counter, as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        guard(py, "stats()", || to_dict(py, &self.engine.stats()))
    }

    /// The virtual device's recorded output as a float32 array of shape (frames, channels).
    fn recording<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        guard(py, "recording()", || {
            let (samples, channels) = self.engine.recording();
            let channels = usize::from(channels.max(1));
            let frames = samples.len() / channels;
            let arr = PyArray1::from_vec(py, samples);
            arr.reshape([frames, channels])
        })
    }

    /// Rates and channel counts the devices run at.
    fn device_params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        guard(py, "device_params()", || {
            to_dict(py, &self.engine.device_params())
        })
    }

    /// Switches echo cancellation on or off, at once and for later starts.
    fn set_echo_cancellation(&self, py: Python<'_>, enabled: bool) -> PyResult<()> {
        guard(py, "set_echo_cancellation()", || {
            self.engine.set_echo_cancellation(enabled);
            Ok(())
        })
    }

    /// Whether echo cancellation is switched on.
    #[getter]
    fn echo_cancellation(&self) -> bool {
        self.engine.echo_cancellation()
    }

    /// Whether the running session has a canceller (both an input and an output are open).
    #[getter]
    fn echo_available(&self, py: Python<'_>) -> PyResult<bool> {
        guard(py, "echo_available", || Ok(self.engine.echo_available()))
    }

    /// Sets the canceller's backend ("sonora" or "aec3"), noise suppression and high-pass
    /// filter, at once and for later starts.
    #[pyo3(signature = (backend="sonora", noise_suppression=true, high_pass_filter=true))]
    fn set_echo_options(
        &self,
        py: Python<'_>,
        backend: &str,
        noise_suppression: bool,
        high_pass_filter: bool,
    ) -> PyResult<()> {
        guard(py, "set_echo_options()", || {
            let options = AecOptions {
                backend: AecBackend::from_name(backend).map_err(|e| to_py_err(py, e))?,
                noise_suppression,
                high_pass_filter,
            };
            // May wait for a read() in progress to finish its chunk: release the GIL.
            self.detached(py, move |e| e.set_echo_options(options))
        })
    }

    /// The canceller's settings as `(backend, noise_suppression, high_pass_filter)`.
    fn echo_options(&self) -> (&'static str, bool, bool) {
        let o = self.engine.echo_options();
        (o.backend.name(), o.noise_suppression, o.high_pass_filter)
    }
}
