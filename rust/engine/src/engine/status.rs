//! Snapshots: [`DeviceStatus`] (the health of the devices) and [`Stats`] (every counter),
//! assembled from the callbacks' atomics, the device health and the running session.

use std::sync::atomic::{Ordering::Acquire, Ordering::Relaxed};

use crate::convert::to_dbfs;
use crate::cpal_device::{device_error_name, Host};
use crate::stats::{DeviceStatus, Stats};

use super::{lock, Backend, Engine};

/// What `DeviceStatus` says about the virtual device's clock thread.
const VIRTUAL_THREAD: &str = "virtual clock";

impl Engine {
    /// The health of the real devices: lost or running, what the host granted, and the
    /// gaps below the engine's ring. Cheap; from any thread; also after `stop()`.
    pub fn device_status(&self) -> DeviceStatus {
        let session = self.current();
        let state = session
            .as_ref()
            .and_then(|s| s.device_state.clone())
            .or_else(|| lock(&self.last_device_state).clone());
        let params = session
            .as_ref()
            .map_or_else(|| *lock(&self.last_params), |x| x.params);
        let ms = |frames: u64, rate: u32| frames as f64 * 1000.0 / f64::from(rate.max(1));
        let h = &self.health;
        let Some(state) = state else {
            return match &self.config.backend {
                // The virtual clock has no host below it: its periods are exact and it never
                // loses audio, so its gap counters are truly zero.
                Backend::Virtual(v) => DeviceStatus {
                    state: "virtual".into(),
                    output_device: "virtual".into(),
                    input_device: "virtual".into(),
                    host: "virtual".into(),
                    output_period_frames: v.period_frames,
                    input_period_frames: v.period_frames,
                    output_thread: VIRTUAL_THREAD.into(),
                    input_thread: VIRTUAL_THREAD.into(),
                    ..DeviceStatus::default()
                },
                Backend::Cpal(_) => DeviceStatus {
                    state: "stopped".into(),
                    ..DeviceStatus::default()
                },
            };
        };
        let granted = state.granted();
        let running = session.as_ref().is_some_and(|s| s.running.load(Acquire));
        let latency_requested_ms = match &self.config.backend {
            Backend::Cpal(c) => {
                let host = if granted.host == "pulse" { Host::Pulse } else { Host::Alsa };
                c.buffer_ms(params.output_rate.max(params.input_rate), host)
            }
            Backend::Virtual(_) => 0.0,
        };
        let rt = |v: u8| {
            crate::device_health::RtStatus::from_u8(v)
                .name()
                .to_string()
        };
        DeviceStatus {
            state: if !running {
                "stopped"
            } else if state.is_lost() {
                "lost"
            } else {
                "running"
            }
            .into(),
            lost_reason: if state.is_lost() {
                state.why()
            } else {
                String::new()
            },
            losses: state.losses.load(Relaxed),
            restores: state.restores.load(Relaxed),
            leaked_streams: state.leaked_streams.load(Relaxed),
            output_device: granted.output_device,
            input_device: granted.input_device,
            host: granted.host.into(),
            output_buffer_ms: ms(u64::from(granted.buffer_frames_granted), params.output_rate),
            device_rewrites: self.stats.device_rewrites.load(Relaxed),
            device_rewound_ms: ms(
                self.stats.device_rewound_frames.load(Relaxed),
                params.output_rate,
            ),
            latency_requested_ms,
            output_period_frames: granted.output_period_frames,
            input_period_frames: granted.input_period_frames,
            output_delay_ms: ms(h.output.delay_frames.load(Relaxed), params.output_rate),
            input_delay_ms: ms(h.input.delay_frames.load(Relaxed), params.input_rate),
            output_device_underruns: h.output.gaps.load(Relaxed),
            output_device_underrun_ms: ms(h.output.gap_frames.load(Relaxed), params.output_rate),
            input_device_overruns: h.input.gaps.load(Relaxed),
            input_device_overrun_ms: ms(h.input.gap_frames.load(Relaxed), params.input_rate),
            output_backend_xruns: h.output.backend_xruns.load(Relaxed),
            input_backend_xruns: h.input.backend_xruns.load(Relaxed),
            output_error_callbacks: h.output.error_callbacks.load(Relaxed),
            input_error_callbacks: h.input.error_callbacks.load(Relaxed),
            output_thread: rt(h.output.rt.load(Relaxed)),
            input_thread: rt(h.input.rt.load(Relaxed)),
        }
    }

    /// A snapshot of every counter. Cheap; callable from any thread at any time, also after
    /// [`stop`](Self::stop) (then with the rates of the last run and nothing buffered).
    pub fn stats(&self) -> Stats {
        let s = &self.stats;
        let session = self.current();
        let params = session
            .as_ref()
            .map_or_else(|| *lock(&self.last_params), |x| x.params);
        let out_rate = f64::from(params.output_rate.max(1));
        let in_rate = f64::from(params.input_rate.max(1));
        let frames_ms = |frames: u64, rate: f64| frames as f64 * 1000.0 / rate;
        let echo = self.echo.snapshot();
        let (playback_buffered_frames, turn) = session
            .as_ref()
            .and_then(|x| x.producer.as_ref().zip(x.playback.as_ref()))
            .map(|(p, shared)| {
                let turn = p.try_lock().map(|p| p.turn_progress()).unwrap_or_default();
                (shared.buffered_frames(), turn)
            })
            .unwrap_or_default();
        let playback_buffered_ms = frames_ms(playback_buffered_frames, out_rate);
        let capture_buffered_ms = session
            .as_ref()
            .and_then(|x| x.reader.as_ref())
            .and_then(|r| r.try_lock().ok().map(|r| r.queued_frames() as u64))
            .map_or(0.0, |f| frames_ms(f, in_rate));
        let ot = &s.output_timing;
        let it = &s.input_timing;
        Stats {
            input_rate_hz: params.input_rate,
            output_rate_hz: params.output_rate,
            input_channels: params.input_channels,
            output_channels: params.output_channels,
            // The period the device really delivers, once it has run; else the one asked for.
            period_frames: match s.output_timing.last_frames.load(Relaxed) {
                0 => match s.input_timing.last_frames.load(Relaxed) {
                    0 => params.period_frames,
                    n => n,
                },
                n => n,
            },
            frames_captured: s.frames_captured.load(Relaxed),
            capture_overflows: s.capture_overflows.load(Relaxed),
            capture_overflow_frames: s.capture_overflow_frames.load(Relaxed),
            nonfinite_samples: s.nonfinite_samples.load(Relaxed),
            chunks_read: s.chunks_read.load(Relaxed),
            frames_played: s.frames_played.load(Relaxed),
            frames_rendered: s.frames_rendered.load(Relaxed),
            underruns: s.underruns.load(Relaxed),
            underrun_silence_ms: frames_ms(s.underrun_silence_frames.load(Relaxed), out_rate),
            flushes: s.flushes.load(Relaxed),
            flushed_ms: frames_ms(s.flushed_frames.load(Relaxed), out_rate),
            frames_pushed: s.frames_pushed.load(Relaxed),
            frames_flushed: s.flushed_frames.load(Relaxed),
            playback_buffered_frames,
            output_callbacks: ot.callbacks.load(Relaxed),
            input_callbacks: it.callbacks.load(Relaxed),
            callback_p50_us: ot.duration.quantile_ns(0.5) / 1e3,
            callback_p99_us: ot.duration.quantile_ns(0.99) / 1e3,
            callback_max_us: ot.duration.max_ns() as f64 / 1e3,
            input_callback_p99_us: it.duration.quantile_ns(0.99) / 1e3,
            input_callback_max_us: it.duration.max_ns() as f64 / 1e3,
            jitter_p99_ms: ot.interval_jitter.quantile_ns(0.99) / 1e6,
            jitter_max_ms: ot.interval_jitter.max_ns() as f64 / 1e6,
            input_jitter_p99_ms: it.interval_jitter.quantile_ns(0.99) / 1e6,
            input_jitter_max_ms: it.interval_jitter.max_ns() as f64 / 1e6,
            playback_buffered_ms,
            capture_buffered_ms,
            input_rms_dbfs: to_dbfs(s.input_rms.load()),
            input_peak_dbfs: to_dbfs(s.input_peak.load()),
            output_rms_dbfs: to_dbfs(s.output_rms.load()),
            output_peak_dbfs: to_dbfs(s.output_peak.load()),
            device_errors: s.device_errors.load(Relaxed),
            device_error_callbacks: s.device_error_callbacks.load(Relaxed),
            last_device_error: device_error_name(s.last_device_error.load(Relaxed)).to_string(),
            turn_played_ms: turn.heard_ms(),
            turn_received_ms: turn.received_ms(),
            input_ended: self.input_ended(),
            // On, and a canceller exists (it needs both an input and an output).
            echo_cancellation: echo.enabled && !echo.backend.is_empty(),
            echo_backend: echo.backend,
            echo_frames: echo.frames_processed,
            echo_erle_db: echo.erle_db.unwrap_or(0.0),
            echo_delay_ms: echo.delay_ms.unwrap_or(0.0),
            echo_reference_late: echo.reference_late_frames,
            echo_reference_dropped: echo.reference_dropped_frames,
            echo_realignments: echo.realignments,
            echo_shifts: echo.shifts,
            echo_errors: echo.errors,
            echo_cost_mean_us: echo.cost_mean_us,
            echo_cost_p99_us: echo.cost_p99_us,
            echo_cost_max_us: echo.cost_max_us,
            device: self.device_status(),
            jitter_buffer_ms: frames_ms(s.jitter_buffer_frames.load(Relaxed), out_rate),
        }
    }
}
