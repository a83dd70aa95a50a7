//! Keeps real devices alive: a supervisor thread (never a device thread) watches the
//! streams, gives up a dead one, and rebuilds it with backoff on the same rings.
//!
//! * **Dead** means: the backend said the device is gone, or it reports errors and
//!   delivers no audio (an error storm: cpal's ALSA worker loops on a lost PulseAudio
//!   server), or its callbacks stopped (a stalled frame clock). See [`Watch`].
//! * **Giving up** a stream: its generation stops being current (its callbacks go quiet at
//!   once, its error callback sleeps instead of spinning), a [`DeviceEvent`] `Lost` is
//!   queued, and the stream is dropped on a reaper thread. Dropping a cpal stream joins
//!   its device thread, which can hang inside a sound-server plugin whose server died; the
//!   supervisor waits at most [`RETIRE_WAIT`] and leaves a hung one behind (counted).
//! * **Rebuilding**: the device is looked up again (so "default" follows a new default
//!   device), opened at the rate and channel count the rings were made for, with backoff
//!   from 50 ms doubling to 2 s. The callbacks, and with them the rings, carry over:
//!   queued playback continues where it stopped, captured audio is still there to read.
//!   Success queues a `Restored` event.
//!
//! Everything here is ordinary (non-real-time) code.

use std::collections::VecDeque;
use std::sync::atomic::{
    AtomicBool, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cpal_stream::{CallbackSlots, CpalStreams, Granted};
use crate::device_health::{DeviceHealth, LostReason, Watch};
use crate::error::{EngineError, Result};

/// How often the supervisor looks at the streams.
pub const CHECK_EVERY: Duration = Duration::from_millis(25);
/// Longest wait for a given-up stream to shut down before it is left behind.
pub const RETIRE_WAIT: Duration = Duration::from_millis(250);
/// First retry delay after a loss; doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Longest delay between two rebuild attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Events kept for the application; older ones are dropped first.
const MAX_EVENTS: usize = 256;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What happened to the devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceEventKind {
    /// A stream died; the engine keeps its rings and retries.
    #[default]
    Lost,
    /// The streams run again (on the same or a new default device).
    Restored,
}

impl DeviceEventKind {
    /// `"device_lost"` or `"device_restored"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Lost => "device_lost",
            Self::Restored => "device_restored",
        }
    }
}

/// One device event, as `Engine::next_device_event` hands it out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeviceEvent {
    /// Lost or restored.
    pub kind: DeviceEventKind,
    /// Seconds since the engine was created.
    pub at_s: f64,
    /// What happened, in words.
    pub message: String,
    /// Output and input device ids involved (empty for a closed direction).
    pub output_device: String,
    /// See `output_device`.
    pub input_device: String,
    /// For `Restored`: how long the devices were gone, in milliseconds.
    pub outage_ms: f64,
    /// For `Restored`: rebuild attempts it took.
    pub attempts: u32,
}

/// A queue of device events with a wait, shared by the engine and its supervisors.
#[derive(Debug)]
pub struct EventLog {
    epoch: Instant,
    events: Mutex<VecDeque<DeviceEvent>>,
    ready: Condvar,
}

impl Default for EventLog {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            events: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
        }
    }
}

impl EventLog {
    fn push(&self, mut event: DeviceEvent) {
        event.at_s = self.epoch.elapsed().as_secs_f64();
        let mut q = lock(&self.events);
        if q.len() == MAX_EVENTS {
            q.pop_front();
        }
        q.push_back(event);
        self.ready.notify_all();
    }

    /// The oldest event not handed out yet, waiting up to `timeout` (`None` = forever).
    pub fn next(&self, timeout: Option<Duration>) -> Option<DeviceEvent> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut q = lock(&self.events);
        loop {
            if let Some(e) = q.pop_front() {
                return Some(e);
            }
            let wait = match deadline {
                Some(d) => d.checked_duration_since(Instant::now())?,
                None => Duration::from_secs(3600),
            };
            q = self
                .ready
                .wait_timeout(q, wait)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

/// State of the devices that every engine call can see without locking.
#[derive(Debug, Default)]
pub struct DeviceState {
    lost: AtomicBool,
    /// Streams given up so far.
    pub losses: AtomicU64,
    /// Successful rebuilds.
    pub restores: AtomicU64,
    /// Given-up streams that did not shut down within [`RETIRE_WAIT`] (their thread is
    /// left behind, blocked in the backend).
    pub leaked_streams: AtomicU64,
    /// Why the devices are gone (while they are) and the last rebuild error.
    why: Mutex<String>,
    /// What the host granted the current streams.
    granted: Mutex<Granted>,
}

impl DeviceState {
    /// Whether the devices are gone right now.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Acquire)
    }
    /// Why they are gone, and what the last attempt to reopen them said.
    pub fn why(&self) -> String {
        lock(&self.why).clone()
    }
    /// What the host granted the running streams (or the last ones).
    pub fn granted(&self) -> Granted {
        lock(&self.granted).clone()
    }
    /// Records the first streams of a session.
    pub fn set_granted(&self, granted: Granted) {
        *lock(&self.granted) = granted;
    }
    /// The error `read()`/`play()` raise while the devices are gone.
    pub fn lost_error(&self, what: &str, waited: Duration) -> EngineError {
        EngineError::DeviceLost(format!(
            "{what}: the audio device is gone ({}); waited {:.1} s for it to come back. The \
             engine keeps its buffers and reopens the device by itself when it is back (see \
             the device_lost / device_restored events); check that the sound server runs",
            self.why(),
            waited.as_secs_f64()
        ))
    }
}

/// Opens streams for a generation: the engine's recipe, with its rings, device choice and
/// the rate and channel count those rings need.
pub type Builder = Box<dyn FnMut(u64) -> Result<CpalStreams> + Send>;

struct Shared {
    stop: Mutex<bool>,
    wake: Condvar,
    state: Arc<DeviceState>,
    events: Arc<EventLog>,
    health: Arc<DeviceHealth>,
    slots: Arc<CallbackSlots>,
}

/// The supervisor of one engine session; owns the running streams.
pub struct Supervisor {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    done: mpsc::Receiver<()>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("lost", &self.shared.state.is_lost())
            .finish_non_exhaustive()
    }
}

/// Drops streams on a reaper thread and waits at most [`RETIRE_WAIT`]; `false` if they
/// did not go in time (the reaper stays behind, blocked in the backend).
fn retire(streams: CpalStreams) -> bool {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("duplex-reaper".into())
        .spawn(move || {
            drop(streams.into_streams());
            let _ = tx.send(());
        });
    match spawned {
        Ok(_) => rx.recv_timeout(RETIRE_WAIT).is_ok(),
        Err(_) => false,
    }
}

impl Supervisor {
    /// Starts supervising `streams` (already running as generation `streams.generation`);
    /// `build` reopens them after a loss. The directions (input, output) that exist are
    /// watched.
    pub fn start(
        streams: CpalStreams,
        build: Builder,
        slots: Arc<CallbackSlots>,
        health: Arc<DeviceHealth>,
        state: Arc<DeviceState>,
        events: Arc<EventLog>,
        (watch_input, watch_output): (bool, bool),
    ) -> Result<Self> {
        state.set_granted(streams.granted.clone());
        let shared = Arc::new(Shared {
            stop: Mutex::new(false),
            wake: Condvar::new(),
            state,
            events,
            health,
            slots,
        });
        let (done_tx, done) = mpsc::channel();
        let run_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("duplex-supervisor".into())
            .spawn(move || {
                run(&run_shared, streams, build, watch_input, watch_output);
                let _ = done_tx.send(());
            })
            .map_err(|e| EngineError::Device(format!("cannot start the device supervisor: {e}")))?;
        Ok(Self {
            shared,
            thread: Some(thread),
            done,
        })
    }

    /// Stops the streams and the supervisor, waiting at most `limit` (a rebuild blocked in
    /// the backend, or a stream that hangs in shutdown, is left behind).
    pub fn stop(&mut self, limit: Duration) {
        *lock(&self.shared.stop) = true;
        self.shared.wake.notify_all();
        if self.done.recv_timeout(limit).is_ok() {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        } else {
            // Detached: it finishes (or not) on its own; nothing waits for it.
            self.thread.take();
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop(Duration::from_millis(500));
        }
    }
}

fn watches(health: &DeviceHealth, now: Instant) -> (Watch, Watch) {
    let w = |d: &crate::device_health::DirectionHealth| {
        Watch::new(
            now,
            d.callbacks.load(Relaxed),
            d.error_callbacks.load(Relaxed),
        )
    };
    (w(&health.output), w(&health.input))
}

fn run(shared: &Shared, first: CpalStreams, mut build: Builder, watch_in: bool, watch_out: bool) {
    let state = &shared.state;
    let health = &shared.health;
    let mut current = Some(first);
    let mut generation = current.as_ref().map_or(1, |s| s.generation);
    let (mut out_watch, mut in_watch) = watches(health, Instant::now());
    let mut lost_at = Instant::now();
    let mut attempts = 0u32;
    let mut next_try = Instant::now();
    let mut last_granted = state.granted();
    loop {
        {
            let stop = lock(&shared.stop);
            let stop = if *stop {
                stop
            } else {
                shared
                    .wake
                    .wait_timeout(stop, CHECK_EVERY)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0
            };
            if *stop {
                break;
            }
        }
        let now = Instant::now();
        if current.is_some() {
            let check = |w: &mut Watch, d: &crate::device_health::DirectionHealth| {
                w.check(
                    now,
                    d.callbacks.load(Relaxed),
                    d.error_callbacks.load(Relaxed),
                    d.poll_errors.load(Relaxed),
                    d.not_available.load(Relaxed),
                )
            };
            let reason: Option<LostReason> = (if watch_out {
                check(&mut out_watch, &health.output)
            } else {
                None
            })
            .or_else(|| {
                if watch_in {
                    check(&mut in_watch, &health.input)
                } else {
                    None
                }
            });
            if let Some(reason) = reason {
                // Quiet the old generation first: its callbacks stop touching the rings and
                // its error callback stops spinning, even if it never shuts down.
                generation += 1;
                shared.slots.set_generation(generation);
                if let Some(old) = current.take() {
                    last_granted = old.granted.clone();
                    if !retire(old) {
                        state.leaked_streams.fetch_add(1, Relaxed);
                    }
                }
                *lock(&state.why) = reason.to_string();
                state.lost.store(true, Release);
                state.losses.fetch_add(1, Relaxed);
                lost_at = now;
                attempts = 0;
                next_try = now + FIRST_BACKOFF;
                shared.events.push(DeviceEvent {
                    kind: DeviceEventKind::Lost,
                    at_s: 0.0,
                    message: reason.to_string(),
                    output_device: last_granted.output_device.clone(),
                    input_device: last_granted.input_device.clone(),
                    outage_ms: 0.0,
                    attempts: 0,
                });
            }
            continue;
        }
        if now < next_try {
            continue;
        }
        attempts += 1;
        health.output.not_available.store(false, Relaxed);
        health.input.not_available.store(false, Relaxed);
        match build(generation) {
            Ok(streams) => {
                let granted = streams.granted.clone();
                state.set_granted(granted.clone());
                (out_watch, in_watch) = watches(health, Instant::now());
                current = Some(streams);
                state.lost.store(false, Release);
                state.restores.fetch_add(1, Relaxed);
                *lock(&state.why) = String::new();
                let outage = lost_at.elapsed();
                shared.events.push(DeviceEvent {
                    kind: DeviceEventKind::Restored,
                    at_s: 0.0,
                    message: format!(
                        "audio runs again after {:.2} s ({attempts} attempt{})",
                        outage.as_secs_f64(),
                        if attempts == 1 { "" } else { "s" }
                    ),
                    output_device: granted.output_device,
                    input_device: granted.input_device,
                    outage_ms: outage.as_secs_f64() * 1000.0,
                    attempts,
                });
            }
            Err(e) => {
                generation += 1;
                {
                    let mut why = lock(&state.why);
                    let cause = why
                        .split(" (last attempt:")
                        .next()
                        .unwrap_or("")
                        .to_string();
                    *why = format!("{cause} (last attempt: {e})");
                }
                let backoff = FIRST_BACKOFF
                    .saturating_mul(1 << attempts.min(6))
                    .min(MAX_BACKOFF);
                next_try = Instant::now() + backoff;
            }
        }
    }
    shared.slots.set_generation(generation + 1);
    if let Some(streams) = current.take() {
        if !retire(streams) {
            state.leaked_streams.fetch_add(1, Relaxed);
        }
    }
}
