//! Real-time scheduling for the device threads.
//!
//! cpal's own `realtime` feature promotes its ALSA worker only for PCM types that cannot
//! chain to a sound server, so it never promotes a stream through the `pulse` or
//! `pipewire` ALSA plugins: exactly the path most Linux desktops use. The engine therefore
//! promotes the device thread itself, once, from that thread's first data callback:
//! `SCHED_FIFO` at a modest priority (below the sound server's own threads, so the engine
//! never starves the server it feeds), with `SCHED_RESET_ON_FORK` so children do not
//! inherit it. Where the system refuses (no `CAP_SYS_NICE`, `RLIMIT_RTPRIO` 0) the thread
//! stays at normal priority and the refusal is reported, nothing else happens.
//!
//! A real-time thread that spins would starve the machine; the engine's device threads
//! cannot spin: a failing stream's error callback is throttled (see `cpal_stream`) and
//! the kernel's RT throttling (`sched_rt_runtime_us`) keeps 5 % for everyone else.

#![allow(unsafe_code)] // two libc calls, each with its SAFETY note

use crate::device_health::RtStatus;

/// `SCHED_FIFO` priority of the device threads. PulseAudio runs its own I/O threads at 5
/// (SCHED_RR), PipeWire at 88 and JACK at 70+; 4 keeps the engine just below the server.
pub const RT_PRIORITY: i32 = 4;

/// Promotes the calling thread to `SCHED_FIFO` [`RT_PRIORITY`]. Called once per device
/// thread, from its first callback: one system call, no allocation.
#[cfg(target_os = "linux")]
pub fn promote_current_thread() -> RtStatus {
    let param = libc::sched_param {
        sched_priority: RT_PRIORITY,
    };
    // SAFETY: `param` is a valid, initialised sched_param that outlives the call; pid 0 is
    // the calling thread. The call only changes this thread's scheduling policy.
    let rc = unsafe {
        libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &param)
    };
    if rc == 0 {
        RtStatus::Realtime
    } else {
        RtStatus::Denied
    }
}

/// Promotion is only implemented on Linux; elsewhere the thread keeps its priority.
#[cfg(not(target_os = "linux"))]
pub fn promote_current_thread() -> RtStatus {
    RtStatus::Denied
}

/// The calling thread's scheduling policy is a real-time one (for tests).
#[cfg(target_os = "linux")]
pub fn current_thread_is_realtime() -> bool {
    // SAFETY: sched_getscheduler(0) only reads the calling thread's policy.
    let policy = unsafe { libc::sched_getscheduler(0) };
    policy & !libc::SCHED_RESET_ON_FORK == libc::SCHED_FIFO
        || policy & !libc::SCHED_RESET_ON_FORK == libc::SCHED_RR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn promotion_reports_what_the_system_did() {
        let status =
            std::thread::spawn(|| (promote_current_thread(), current_thread_is_realtime()))
                .join()
                .unwrap();
        match status {
            (RtStatus::Realtime, true) | (RtStatus::Denied, false) => {}
            other => panic!("reported {other:?}"),
        }
    }
}
