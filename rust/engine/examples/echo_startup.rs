//! Start-up figures of the echo canceller through the whole engine on the virtual device's
//! echo path: how much echo is removed in the first 0.5 s of the far end, and when the
//! removal first reaches 30 dB and stays there (100 ms windows).
//!
//! ```text
//! cargo run --release -p duplex-engine --example echo_startup [-- aec3] [fast]
//! ```
//! Prints one line per echo delay (10, 40, 150, 300 ms; gain 0.5; speech-like far end), each
//! a 6 s take in real time (the device as fast as possible would run ahead of the reader and
//! have reference a real device has not rendered yet).

use std::time::Duration;

use duplex_engine::aec::signals::{speech_like, Voice};
use duplex_engine::{
    AecBackend, AecOptions, Backend, Engine, EngineConfig, VirtualConfig, VirtualInput,
    VirtualOutput,
};

const RATE: u32 = 48_000;
const SECONDS: f64 = 6.0;
const WINDOW: usize = 1_600;

fn energy(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len().max(1) as f64
}

fn db(r: f64) -> f64 {
    10.0 * r.max(1e-20).log10()
}

fn take(delay_ms: f64, gain: f32, backend: AecBackend, speed: f64) -> (f64, Option<f64>, f64, f64) {
    let total16 = (SECONDS * 16_000.0) as usize;
    let mut config = EngineConfig {
        backend: Backend::Virtual(VirtualConfig {
            sample_rate: RATE,
            period_frames: 480,
            input: VirtualInput::Samples {
                samples: vec![0.0; total16],
                rate_hz: 16_000,
            },
            loopback_delay_ms: Some(delay_ms),
            loopback_gain: gain,
            output: VirtualOutput::Memory,
            speed,
            ..VirtualConfig::default()
        }),
        prebuffer_ms: 60,
        ..EngineConfig::default()
    };
    if speed == 0.0 {
        // As in tests/echo.rs: a short ring keeps the fast device close to the reader.
        config.capture_buffer_ms = 100;
    }
    let engine = Engine::new(config).expect("engine");
    engine
        .set_echo_options(AecOptions {
            backend,
            ..AecOptions::default()
        })
        .expect("options");
    engine.set_echo_cancellation(true);
    engine.start().expect("start");
    let far = speech_like(24_000, SECONDS - 1.0, Voice::Low, 3, 0.1);
    let pcm: Vec<i16> = far.iter().map(|&s| (s * 32767.0) as i16).collect();
    engine.play(&pcm, None).expect("play");
    engine.end_turn(None).expect("end turn");
    let mut out = Vec::with_capacity(total16);
    while out.len() < total16 {
        let chunk = engine
            .read(Some(Duration::from_secs(10)))
            .expect("read")
            .expect("a chunk");
        out.extend(chunk.iter().map(|&s| f32::from(s) / 32768.0));
    }
    out.truncate(total16);
    engine.stop().expect("stop");
    // The echo below is computed as if every device frame reached the reader.
    assert_eq!(engine.stats().capture_overflows, 0, "the capture ring overflowed");
    let (rec, _) = engine.recording();
    let delay = ((delay_ms / 1000.0 * f64::from(RATE)).round() as usize).max(480);
    let echo: Vec<f32> = (0..total16)
        .map(|k| {
            let n = 3 * k;
            if n >= delay && n - delay < rec.len() {
                gain * rec[n - delay]
            } else {
                0.0
            }
        })
        .collect();
    let first = rec.iter().position(|s| s.abs() > 1e-4).expect("sound");
    let start = (first + delay) / 3;
    let first_half = start..start + 8_000;
    let r05 = db(energy(&echo[first_half.clone()]) / energy(&out[first_half]));
    // Windows where the echo is quiet (pauses of the far end, 20 dB below its level) say
    // nothing about the canceller: they count as converged.
    let loud = energy(&echo[start..start + 32_000]) * 0.01;
    let windows: Vec<f64> = (start..total16 - 16_000)
        .step_by(WINDOW)
        .map(|a| {
            let e = energy(&echo[a..a + WINDOW]);
            if e < loud {
                f64::INFINITY
            } else {
                db(e / energy(&out[a..a + WINDOW]))
            }
        })
        .collect();
    let worst_first = windows.iter().take(5).cloned().fold(f64::MAX, f64::min);
    let converged = (0..windows.len())
        .find(|&i| windows[i..].iter().all(|&w| w >= 30.0))
        .map(|i| i as f64 * WINDOW as f64 / 16_000.0);
    let after = db(
        energy(&echo[start + 32_000..total16 - 16_000]) / energy(&out[start + 32_000..total16 - 16_000]),
    );
    (r05, converged, worst_first, after)
}

fn main() {
    let backend = if std::env::args().any(|a| a == "aec3") {
        AecBackend::Aec3
    } else {
        AecBackend::Sonora
    };
    // `fast`: as fast as possible (simulated time; the device may run ahead of the reader).
    let speed = if std::env::args().any(|a| a == "fast") { 0.0 } else { 1.0 };
    for delay_ms in [10.0, 40.0, 150.0, 300.0] {
        let (r05, conv, worst, after) = take(delay_ms, 0.5, backend, speed);
        println!(
            "{} delay {delay_ms:>5} ms: first 0.5 s {r05:5.1} dB (worst 100 ms window {worst:5.1} dB), \
             >=30 dB from {} s, after 2 s {after:5.1} dB",
            backend.name(),
            conv.map_or("never".to_string(), |c| format!("{c:.1}"))
        );
    }
}
