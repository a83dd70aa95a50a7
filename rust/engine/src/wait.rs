//! The one wait loop of duplex.
//!
//! The engine's calls that may have to wait come in a non-blocking form
//! ([`Engine::try_play`](crate::Engine::try_play), [`try_read`](crate::Engine::try_read),
//! [`try_end_turn`](crate::Engine::try_end_turn), [`try_drain`](crate::Engine::try_drain))
//! that either finishes or says how much audio time is missing. [`wait_for`] retries such a
//! call until it finishes or the caller's timeout passes, sleeping for exactly the missing
//! audio, and lets the caller give up between sleeps (the Python bindings check for Ctrl-C
//! there, with the GIL released while they sleep). The blocking engine calls are this loop
//! with nothing to check.

use std::time::{Duration, Instant};

use crate::error::EngineError;

/// Shortest sleep between two attempts, so a waiter never spins.
pub const MIN_SLEEP: Duration = Duration::from_micros(500);
/// Longest sleep between two attempts, so a stop or an interrupt is noticed promptly.
pub const MAX_SLEEP: Duration = Duration::from_millis(20);

/// What a non-blocking engine call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt<T> {
    /// It finished, with this result.
    Done(T),
    /// Not yet: the device needs about this much more time (the missing audio) before a
    /// retry can succeed.
    Retry(Duration),
}

/// Retries `attempt` until it is [`Attempt::Done`] (then `Ok(Some(result))`) or `timeout`
/// has passed (then `Ok(None)`); `None` waits as long as it takes. Each sleep is the time the
/// attempt said was missing, kept within [`MIN_SLEEP`]..=[`MAX_SLEEP`] and never past the
/// deadline. `between` runs after every sleep; an error from it ends the wait with that error
/// (a caller uses it to notice Ctrl-C or a cancellation).
///
/// A `Closed` error that arrives after the wait began is reported as the engine having been
/// stopped while `what` waited, which is what happened.
///
/// # Errors
/// The first error of `attempt` or `between`.
pub fn wait_for<T, E: From<EngineError>>(
    timeout: Option<Duration>,
    what: &str,
    mut attempt: impl FnMut() -> Result<Attempt<T>, EngineError>,
    mut between: impl FnMut() -> Result<(), E>,
) -> Result<Option<T>, E> {
    // A deadline too far away to represent is no deadline: never a panic.
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let mut waited = false;
    loop {
        let missing = match attempt() {
            Ok(Attempt::Done(value)) => return Ok(Some(value)),
            Ok(Attempt::Retry(missing)) => missing,
            Err(EngineError::Closed(_)) if waited => {
                return Err(EngineError::Closed(format!(
                    "the engine was stopped or closed while {what} waited"
                ))
                .into())
            }
            Err(e) => return Err(e.into()),
        };
        let mut sleep = missing.clamp(MIN_SLEEP, MAX_SLEEP);
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            sleep = sleep.min(left);
        }
        std::thread::sleep(sleep);
        waited = true;
        between()?;
    }
}

/// A duration for a message: milliseconds below a second, else seconds, never hundreds of
/// digits.
pub fn describe(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else if s < 1e6 {
        format!("{s:.3} s")
    } else {
        format!("{s:.3e} s")
    }
}

/// The error of a wait for playback room that ran out of `timeout`, the caller's timeout;
/// `what` says what was not queued.
pub fn playback_full(timeout: Option<Duration>, what: &str) -> EngineError {
    EngineError::PlaybackFull(format!(
        "the playback buffer stayed full for the whole timeout ({}); {what}. Wait for \
         playback to catch up, pass a longer timeout (or None), or raise playback_buffer_ms",
        describe(timeout.unwrap_or_default())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_until_done_and_sleeps_for_the_missing_time() {
        let mut left = 3;
        let started = Instant::now();
        let got = wait_for::<_, EngineError>(
            Some(Duration::from_secs(5)),
            "test",
            || {
                left -= 1;
                Ok(if left == 0 {
                    Attempt::Done(7)
                } else {
                    Attempt::Retry(Duration::from_millis(2))
                })
            },
            || Ok(()),
        );
        assert_eq!(got, Ok(Some(7)));
        assert!(started.elapsed() >= Duration::from_millis(4));
    }

    #[test]
    fn zero_timeout_tries_once_and_huge_timeouts_do_not_panic() {
        let mut tries = 0;
        let got = wait_for::<(), EngineError>(
            Some(Duration::ZERO),
            "test",
            || {
                tries += 1;
                Ok(Attempt::Retry(Duration::from_secs(1)))
            },
            || Ok(()),
        );
        assert_eq!((got, tries), (Ok(None), 1));
        let got = wait_for::<_, EngineError>(
            Some(Duration::MAX),
            "test",
            || Ok(Attempt::Done(())),
            || Ok(()),
        );
        assert_eq!(got, Ok(Some(())));
    }

    #[test]
    fn between_can_end_the_wait_and_closing_while_waiting_is_named() {
        let got = wait_for::<(), EngineError>(
            None,
            "read()",
            || Ok(Attempt::Retry(Duration::ZERO)),
            || Err(EngineError::InvalidInput("stop".into())),
        );
        assert_eq!(got, Err(EngineError::InvalidInput("stop".into())));
        let mut first = true;
        let got = wait_for::<(), EngineError>(
            None,
            "read()",
            || {
                if std::mem::take(&mut first) {
                    Ok(Attempt::Retry(Duration::ZERO))
                } else {
                    Err(EngineError::Closed("not running".into()))
                }
            },
            || Ok(()),
        );
        assert!(matches!(got, Err(EngineError::Closed(m)) if m.contains("while read() waited")));
    }

    #[test]
    fn messages_report_the_callers_timeout_readably() {
        let msg = playback_full(Some(Duration::from_secs(1)), "nothing was queued").to_string();
        assert!(msg.contains("(1.000 s)"), "{msg}");
        assert_eq!(describe(Duration::from_millis(50)), "50 ms");
        assert_eq!(describe(Duration::from_secs(1_000_000_000)), "1.000e9 s");
    }
}
