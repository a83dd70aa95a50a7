//! What the device threads report about a real device, and how the supervisor judges it.
//!
//! * [`DirectionHealth`]: atomics written by one direction's device thread: data callbacks,
//!   error callbacks, backend xruns (ALSA `EPIPE`), and gaps of the device's frame clock.
//! * [`FrameClock`]: **real time**, owned by a stream's data callback. It finds the audio a
//!   listener lost below the engine's ring: the output queue ran dry between two callbacks
//!   (an underrun the server filled with silence), or input was produced faster than it was
//!   fetched for longer than the device could hold (an overrun). Sound servers fill such
//!   gaps themselves and often report nothing to the client (the ALSA pulse plugin does not
//!   return `EPIPE` for a server-side underrun), so the clock is judged from outside: wall
//!   time between callbacks against the audio the device had queued (cpal's timestamps).
//!   A server that loses audio with the client's queue full (PipeWire skipping a late
//!   pipewire-pulse) is found by [`crate::position_clock::PositionClock`] instead.
//! * [`Watch`]: the supervisor's judgement (pure, testable with synthetic times): a stream
//!   is dead when it says so, when it reports errors and delivers no audio (an error storm),
//!   or when its callbacks stop for too long (a stalled frame clock).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// How a device thread's scheduling priority ended up (see `rt_priority`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum RtStatus {
    /// No callback ran yet, or promotion was not asked for.
    #[default]
    Unknown = 0,
    /// Promoted to a real-time policy (`SCHED_FIFO`).
    Realtime = 1,
    /// The system refused (no `CAP_SYS_NICE`, `RLIMIT_RTPRIO` 0, no rtkit): normal priority.
    Denied = 2,
    /// Promotion was turned off by the caller.
    Off = 3,
}

impl RtStatus {
    /// Decodes a value stored with `as u8`.
    pub fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Realtime,
            2 => Self::Denied,
            3 => Self::Off,
            _ => Self::Unknown,
        }
    }
    /// Short name for stats: "realtime", "normal (denied)", "normal (off)", "".
    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "",
            Self::Realtime => "realtime",
            Self::Denied => "normal (real-time denied)",
            Self::Off => "normal (real-time off)",
        }
    }
}

/// Counters of one direction of a real device. Written by the device thread with relaxed
/// atomics only; they survive stream rebuilds (totals over the engine's life).
#[derive(Debug, Default)]
pub struct DirectionHealth {
    /// Data callbacks of any stream generation (the supervisor watches it advance).
    pub callbacks: AtomicU64,
    /// Error callbacks, every one (a dead ALSA stream can report 500 000 a second).
    pub error_callbacks: AtomicU64,
    /// Xruns the backend reported (ALSA `EPIPE`, cpal `ErrorKind::Xrun`).
    pub backend_xruns: AtomicU64,
    /// Errors from polling the device itself (ALSA `snd_pcm_poll_descriptors_revents`):
    /// the sign of a sound server that is gone, not of a stream recovering from an xrun.
    pub poll_errors: AtomicU64,
    /// Gaps of the frame clock: output underruns or input overruns below the engine's ring.
    pub gaps: AtomicU64,
    /// Audio lost in those gaps, in device frames.
    pub gap_frames: AtomicU64,
    /// The backend said the device is gone (cpal `DeviceNotAvailable`).
    pub not_available: AtomicBool,
    /// Device audio queued ahead of the listener (output) or waiting to be read (input) at
    /// the last callback, in frames, as the backend's timestamps say; 0 when unknown.
    pub delay_frames: AtomicU64,
    /// Scheduling priority of the device thread, an [`RtStatus`].
    pub rt: AtomicU8,
}

/// Both directions, shared by the streams, the supervisor and `stats()`.
#[derive(Debug, Default)]
pub struct DeviceHealth {
    /// The output (playback) device.
    pub output: DirectionHealth,
    /// The input (capture) device.
    pub input: DirectionHealth,
}

/// Frame-clock gap detector of one stream direction. **Real time**: arithmetic only.
#[derive(Debug)]
pub struct FrameClock {
    rate: f64,
    /// Frames the device could play (output) or hold (input) without a gap when its delay
    /// is unknown: the granted buffer.
    fallback_frames: f64,
    /// Smallest gap counted, in frames: below it, timing noise of the delay estimate.
    threshold_frames: f64,
    last_ns: Option<u64>,
    /// Output: frames queued ahead after the last write. Input: frames left in the device
    /// after the last read.
    queued_after: f64,
}

impl FrameClock {
    /// A clock for a stream at `rate` Hz whose buffer holds `buffer_frames`.
    pub fn new(rate: u32, buffer_frames: u32) -> Self {
        let rate = f64::from(rate.max(1));
        Self {
            rate,
            fallback_frames: f64::from(buffer_frames.max(1)),
            // 4 ms: the ALSA pulse plugin's delay estimate moves by a few ms between calls.
            threshold_frames: rate * 0.004,
            last_ns: None,
            queued_after: 0.0,
        }
    }

    fn elapsed_frames(&mut self, now_ns: u64) -> Option<f64> {
        let last = self.last_ns.replace(now_ns)?;
        Some(now_ns.saturating_sub(last) as f64 * self.rate / 1e9)
    }

    fn count(&self, lost: f64, health: &DirectionHealth) {
        if lost > self.threshold_frames {
            health.gaps.fetch_add(1, Relaxed);
            health.gap_frames.fetch_add(lost as u64, Relaxed);
        }
    }

    /// An output callback at `now_ns` is about to write `frames`; the device has
    /// `delay_frames` queued ahead of the listener (`None` if the backend cannot say).
    /// Counts an underrun when the queue left by the last write ran out before this call.
    /// **Real time.**
    pub fn output(
        &mut self,
        now_ns: u64,
        delay_frames: Option<f64>,
        frames: usize,
        health: &DirectionHealth,
    ) {
        if let Some(elapsed) = self.elapsed_frames(now_ns) {
            self.count(elapsed - self.queued_after, health);
        }
        let delay = delay_frames.unwrap_or(self.fallback_frames - frames as f64);
        health.delay_frames.store(delay.max(0.0) as u64, Relaxed);
        self.queued_after = delay.max(0.0) + frames as f64;
    }

    /// An input callback at `now_ns` delivers `frames`; `delay_frames` were waiting in the
    /// device, these included (`None` if unknown). Counts an overrun when more audio was
    /// produced since the last call than is now accounted for (it was dropped).
    /// **Real time.**
    pub fn input(
        &mut self,
        now_ns: u64,
        delay_frames: Option<f64>,
        frames: usize,
        health: &DirectionHealth,
    ) {
        let waiting = delay_frames.unwrap_or(frames as f64).max(frames as f64);
        if let Some(elapsed) = self.elapsed_frames(now_ns) {
            let produced = self.queued_after + elapsed;
            let lost = match delay_frames {
                Some(_) => produced - waiting,
                // Unknown delay: only what the buffer could not have held is surely lost.
                None => elapsed - self.fallback_frames,
            };
            self.count(lost, health);
        }
        health.delay_frames.store(waiting as u64, Relaxed);
        self.queued_after = waiting - frames as f64;
    }
}

/// A failing stream may call its error callback in a tight loop (cpal's ALSA worker does,
/// 550 000 times a second, when the pulse plugin loses its server). After this many errors
/// within [`STORM_WINDOW`] *without a data callback*, each further error callback sleeps
/// [`STORM_SLEEP`]: the stream is broken anyway, and a spinning device thread would take a
/// core. See [`StormThrottle`].
pub const STORM_ERRORS: u32 = 64;
/// See [`STORM_ERRORS`].
pub const STORM_WINDOW: Duration = Duration::from_millis(100);
/// See [`STORM_ERRORS`]: caps a broken stream at 200 error callbacks a second.
pub const STORM_SLEEP: Duration = Duration::from_millis(5);

/// Decides whether an error callback sleeps. **Real time**: arithmetic only.
///
/// Only a stream that reports errors and delivers no audio is throttled. A stream that is
/// recovering still calls its error callback hundreds of times a second while its audio
/// flows: after an xrun, cpal's ALSA worker `prepare()`s the PCM, the pulse plugin then
/// recreates its server stream, and for seconds afterwards `snd_pcm_avail_delay` fails with
/// `EIO` between good periods (700-1000 errors/s measured, audio intact). Sleeping 5 ms per
/// error there starved the device thread into the next underrun, which repeated the cycle:
/// an xrun cost a second of silence, or the supervisor's rebuild.
#[derive(Debug, Default, Clone)]
pub struct StormThrottle {
    window_start_ns: Option<u64>,
    in_window: u32,
    callbacks_at_start: u64,
}

impl StormThrottle {
    /// An error callback at `now_ns`, when the stream's direction had run `callbacks` data
    /// callbacks in all: `true` if the device thread is to sleep [`STORM_SLEEP`].
    pub fn on_error(&mut self, now_ns: u64, callbacks: u64) -> bool {
        let window_ns = u64::try_from(STORM_WINDOW.as_nanos()).unwrap_or(u64::MAX);
        if self
            .window_start_ns
            .is_none_or(|t| now_ns.saturating_sub(t) > window_ns)
        {
            self.window_start_ns = Some(now_ns);
            self.in_window = 0;
            self.callbacks_at_start = callbacks;
        }
        self.in_window = self.in_window.saturating_add(1);
        self.in_window > STORM_ERRORS && callbacks == self.callbacks_at_start
    }
}

/// Why the supervisor gave a stream up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LostReason {
    /// The backend reported the device gone.
    Disconnected,
    /// Errors keep coming and no audio does.
    ErrorStorm {
        /// Error callbacks since the last data callback.
        errors: u64,
    },
    /// No callback for this long.
    Stalled(Duration),
}

impl std::fmt::Display for LostReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Disconnected => write!(f, "the device was disconnected"),
            Self::ErrorStorm { errors } => write!(
                f,
                "the device reports errors ({errors} since its last audio) and delivers no \
                 audio; the sound server probably went away"
            ),
            Self::Stalled(d) => write!(
                f,
                "the device delivered no audio for {:.1} s (its clock stopped)",
                d.as_secs_f64()
            ),
        }
    }
}

/// Errors from polling the device itself ([`DirectionHealth::poll_errors`]), without audio,
/// for this long declare a stream dead: what a PulseAudio server that went away looks like
/// through ALSA's pulse plugin (`snd_pcm_poll_descriptors_revents` EIO, 280 000 a second
/// unthrottled, for ever).
pub const STORM_AFTER: Duration = Duration::from_millis(300);
/// Other errors without audio wait this long (as long as [`STALL_AFTER`]) before the stream
/// is given up.
///
/// It was [`STORM_AFTER`] for every error, which gave up streams that come back by
/// themselves. After an xrun through ALSA's pulse plugin, cpal `prepare()`s the PCM and the
/// plugin replaces its server stream; on a loaded machine the new one can go without a
/// period for up to about 2 s while every poll ends in `snd_pcm_avail_delay` EIO or an
/// xrun, and then plays on. Measured on a PulseAudio 16.1 null sink with an independent
/// recorder, those stalls lasted about 2 s with or without a rebuild, so giving up such a
/// stream gained nothing and cost a `device_lost` event, `DeviceLostError` from
/// `read()`/`play()` and the device buffer.
pub const RECOVERY_AFTER: Duration = STALL_AFTER;
/// Fewest errors without audio that make a storm. A dead sound server reports hundreds a
/// second (throttled to 200); a lone xrun while a loaded machine delays a new stream's first
/// callback is not a dead device, and waits for the stall rule instead.
pub const STORM_MIN_ERRORS: u64 = 8;
/// No callback at all for this long declares a running stream dead. Long enough that a
/// sound server stopped for a moment (or a loaded machine) only costs a counted gap.
pub const STALL_AFTER: Duration = Duration::from_millis(2500);
/// A new stream may take this long to its first callback (PulseAudio's idle null sink
/// renders in 2 s blocks, so a first callback 1.7 s late was measured).
pub const FIRST_CALLBACK_WITHIN: Duration = Duration::from_millis(4000);

/// The supervisor's view of one direction of one stream generation.
#[derive(Debug, Clone)]
pub struct Watch {
    started: Instant,
    callbacks: u64,
    errors: u64,
    errors_at_progress: u64,
    poll_errors_at_progress: Option<u64>,
    last_progress: Option<Instant>,
}

impl Watch {
    /// Starts watching a stream built at `now`, with the counters as they are now.
    pub fn new(now: Instant, callbacks: u64, errors: u64) -> Self {
        Self {
            started: now,
            callbacks,
            errors,
            errors_at_progress: errors,
            poll_errors_at_progress: None,
            last_progress: None,
        }
    }

    /// Feeds the counters at `now` (`errors`: all error callbacks, `poll_errors`: those from
    /// polling the device); `Some` when the stream is to be given up.
    pub fn check(
        &mut self,
        now: Instant,
        callbacks: u64,
        errors: u64,
        poll_errors: u64,
        not_available: bool,
    ) -> Option<LostReason> {
        if not_available {
            return Some(LostReason::Disconnected);
        }
        let poll_base = *self.poll_errors_at_progress.get_or_insert(poll_errors);
        if callbacks != self.callbacks {
            self.callbacks = callbacks;
            self.last_progress = Some(now);
            self.errors_at_progress = errors;
            self.poll_errors_at_progress = Some(poll_errors);
        }
        self.errors = errors;
        let since = now.duration_since(self.last_progress.unwrap_or(self.started));
        let new_errors = errors.saturating_sub(self.errors_at_progress);
        let new_poll_errors = poll_errors.saturating_sub(poll_base);
        let storm_after = if new_poll_errors >= STORM_MIN_ERRORS {
            STORM_AFTER
        } else {
            RECOVERY_AFTER
        };
        if new_errors >= STORM_MIN_ERRORS && since >= storm_after {
            return Some(LostReason::ErrorStorm { errors: new_errors });
        }
        let limit = if self.last_progress.is_some() {
            STALL_AFTER
        } else {
            FIRST_CALLBACK_WITHIN
        };
        (since >= limit).then_some(LostReason::Stalled(since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 48_000;

    #[test]
    fn steady_output_has_no_gaps() {
        let h = DirectionHealth::default();
        let mut clock = FrameClock::new(RATE, 960);
        // 10 ms periods, 20 ms queued ahead, a little jitter either way.
        for k in 0..1000u64 {
            let jitter = if k % 2 == 0 { 1_500_000 } else { 0 };
            clock.output(k * 10_000_000 + jitter, Some(960.0 - 480.0), 480, &h);
        }
        assert_eq!(h.gaps.load(Relaxed), 0);
    }

    #[test]
    fn a_late_output_callback_is_an_underrun_of_the_right_length() {
        let h = DirectionHealth::default();
        let mut clock = FrameClock::new(RATE, 960);
        clock.output(0, Some(480.0), 480, &h); // 20 ms queued after the write
        clock.output(10_000_000, Some(480.0), 480, &h);
        clock.output(110_000_000, Some(0.0), 480, &h); // 100 ms later: 80 ms of silence
        assert_eq!(h.gaps.load(Relaxed), 1);
        let lost_ms = h.gap_frames.load(Relaxed) as f64 * 1000.0 / f64::from(RATE);
        assert!((lost_ms - 80.0).abs() < 0.1, "{lost_ms}");
    }

    #[test]
    fn unknown_delay_assumes_a_full_buffer() {
        let h = DirectionHealth::default();
        let mut clock = FrameClock::new(RATE, 960);
        clock.output(0, None, 480, &h);
        clock.output(15_000_000, None, 480, &h); // 15 ms < 20 ms buffer: fine
        assert_eq!(h.gaps.load(Relaxed), 0);
        clock.output(65_000_000, None, 480, &h); // 50 ms: 30 ms lost
        assert_eq!(h.gaps.load(Relaxed), 1);
    }

    #[test]
    fn input_overrun_is_audio_produced_and_not_delivered() {
        let h = DirectionHealth::default();
        let mut clock = FrameClock::new(RATE, 960);
        clock.input(0, Some(480.0), 480, &h);
        for k in 1..100u64 {
            clock.input(k * 10_000_000, Some(480.0), 480, &h);
        }
        assert_eq!(h.gaps.load(Relaxed), 0);
        // 200 ms later only 20 ms are waiting: 180 ms were dropped (less the 10 ms period).
        clock.input(99 * 10_000_000 + 200_000_000, Some(960.0), 480, &h);
        assert_eq!(h.gaps.load(Relaxed), 1);
        let lost_ms = h.gap_frames.load(Relaxed) as f64 * 1000.0 / f64::from(RATE);
        assert!((lost_ms - 180.0).abs() < 0.1, "{lost_ms}");
        // A late read that finds everything waiting lost nothing.
        clock.input(99 * 10_000_000 + 300_000_000, Some(4800.0 + 480.0), 480, &h);
        assert_eq!(h.gaps.load(Relaxed), 1);
    }

    #[test]
    fn error_storm_without_audio_is_throttled() {
        let mut t = StormThrottle::default();
        let sleeps = (0..1000u64)
            .filter(|k| t.on_error(k * 20_000, 5)) // 1000 errors in 20 ms, no audio
            .count();
        assert_eq!(sleeps, 1000 - STORM_ERRORS as usize);
    }

    #[test]
    fn errors_between_good_periods_never_sleep() {
        // A stream recovering from an xrun: EIO from snd_pcm_avail_delay ~20 times per
        // 26.7 ms period for seconds, while its data callbacks keep coming.
        let mut t = StormThrottle::default();
        let mut callbacks = 100;
        for k in 0..20_000u64 {
            if k % 20 == 0 {
                callbacks += 1;
            }
            assert!(!t.on_error(k * 1_333_000, callbacks), "slept at error {k}");
        }
        // The same stream once its audio stops: throttled after STORM_ERRORS.
        let now = 20_000 * 1_333_000;
        let slept = (0..300u64)
            .filter(|k| t.on_error(now + k * 1_000_000, callbacks))
            .count();
        assert!(slept > 0);
    }

    #[test]
    fn a_stream_that_recovers_from_an_xrun_by_itself_is_not_given_up() {
        // What the pulse plugin does after an xrun on a loaded machine: a second of errors
        // (the plugin replacing its server stream) with no audio, then periods again.
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut w = Watch::new(t0, 0, 0);
        let mut callbacks = 0;
        let mut errors = 0;
        for k in 1..=100u64 {
            callbacks += 1; // 2 s of steady audio
            assert_eq!(w.check(ms(k * 20), callbacks, errors, 0, false), None);
        }
        for k in 1..=40u64 {
            errors += 25; // 1 s of errors, checked every 25 ms, no audio
            assert_eq!(
                w.check(ms(2000 + k * 25), callbacks, errors, 0, false),
                None
            );
        }
        for k in 1..=100u64 {
            callbacks += 1;
            errors += 3;
            assert_eq!(
                w.check(ms(3000 + k * 20), callbacks, errors, 0, false),
                None
            );
        }
    }

    #[test]
    fn watch_finds_storms_stalls_and_disconnects() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut w = Watch::new(t0, 0, 0);
        assert_eq!(w.check(ms(10), 1, 0, 0, false), None);
        // Errors without audio: dead after STORM_AFTER.
        assert_eq!(w.check(ms(100), 1, 5000, 5000, false), None);
        assert!(matches!(
            w.check(ms(320), 1, 90_000, 90_000, false),
            Some(LostReason::ErrorStorm { errors: 90_000 })
        ));
        // One error on a new stream whose first callback is late is not a storm.
        let mut w = Watch::new(t0, 0, 0);
        assert_eq!(w.check(ms(1500), 0, 1, 1, false), None);
        assert_eq!(w.check(ms(1800), 1, 1, 1, false), None);
        // An error burst while audio keeps coming is not a storm.
        let mut w = Watch::new(t0, 0, 0);
        for k in 1..100 {
            assert_eq!(w.check(ms(k * 20), k, k * 1000, k * 1000, false), None);
        }
        // Stalled with no errors at all.
        let mut w = Watch::new(t0, 0, 0);
        assert_eq!(w.check(ms(10), 3, 0, 0, false), None);
        assert_eq!(w.check(ms(2000), 3, 0, 0, false), None);
        assert!(matches!(
            w.check(ms(2600), 3, 0, 0, false),
            Some(LostReason::Stalled(_))
        ));
        // A new stream gets longer to start; a disconnect is final at once.
        let mut w = Watch::new(t0, 0, 0);
        assert_eq!(w.check(ms(3000), 0, 0, 0, false), None);
        assert_eq!(
            w.check(ms(3001), 0, 0, 0, true),
            Some(LostReason::Disconnected)
        );
    }
}
