//! Echo cancellation through the whole engine on the virtual device's echo path: the model's
//! audio is played, the device's "microphone" hears it back after a delay, and the 16 kHz
//! chunks `read()` returns must have the echo removed but keep a near-end talker.
//!
//! The echo each chunk would carry without cancellation is known exactly: the device's
//! recording of what it played, delayed and scaled by the echo path. Capture index `k`
//! (16 kHz) is device frame `3k` (48 kHz): both run on the virtual device's one clock.

use std::time::Duration;

use duplex_engine::aec::signals::{speech_like, Voice};
use duplex_engine::{
    AecBackend, AecOptions, Backend, Engine, EngineConfig, VirtualConfig, VirtualInput,
    VirtualOutput,
};

const RATE: u32 = 48_000;
const FAR_RMS: f64 = 0.1; // -20 dBFS while talking

/// What happens in the middle of the far-end audio.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Event {
    None,
    /// `interrupt()` at 5 s (barge-in flush), then a new turn.
    Flush,
    /// The model's audio stops arriving for a while at 5 s (a jitter-buffer underrun).
    Underrun,
}

struct Case {
    delay_ms: f64,
    gain: f32,
    skew_ppm: f64,
    near: bool,
    event: Event,
    options: Option<AecOptions>,
}

impl Default for Case {
    fn default() -> Self {
        Self {
            delay_ms: 40.0,
            gain: 0.5,
            skew_ppm: 0.0,
            near: false,
            event: Event::None,
            options: Some(AecOptions::default()),
        }
    }
}

struct Run {
    /// Captured 16 kHz chunks, as f32.
    out: Vec<f32>,
    /// The echo the capture would carry without cancellation, 16 kHz, aligned with `out`.
    echo: Vec<f32>,
    /// The clean near-end at 16 kHz, aligned with `out` (zeros without near-end).
    near: Vec<f32>,
    /// Capture index where the far end starts being heard.
    far_start: usize,
    stats: duplex_engine::EchoStats,
}

const SECONDS: f64 = 12.0;
const NEAR_FROM: f64 = 6.5;
const NEAR_TO: f64 = 10.0;

fn run(case: &Case) -> Run {
    let total16 = (SECONDS * 16_000.0) as usize;
    let mut near16 = vec![0.0f32; total16];
    if case.near {
        let talk = speech_like(
            16_000,
            NEAR_TO - NEAR_FROM,
            Voice::High,
            7,
            FAR_RMS * f64::from(case.gain),
        );
        let from = (NEAR_FROM * 16_000.0) as usize;
        near16[from..from + talk.len()].copy_from_slice(&talk);
    }
    let engine = Engine::new(EngineConfig {
        backend: Backend::Virtual(VirtualConfig {
            sample_rate: RATE,
            period_frames: 480,
            input: VirtualInput::Samples {
                samples: near16.clone(),
                rate_hz: 16_000,
            },
            loopback_delay_ms: Some(case.delay_ms),
            loopback_gain: case.gain,
            output: VirtualOutput::Memory,
            speed: 0.0,
            clock_skew_ppm: case.skew_ppm,
            ..VirtualConfig::default()
        }),
        prebuffer_ms: 60,
        // A short capture ring keeps the as-fast-as-possible device close to the reader.
        capture_buffer_ms: 100,
        ..EngineConfig::default()
    })
    .unwrap();
    if let Some(options) = case.options {
        engine.set_echo_options(options).unwrap();
        engine.set_echo_cancellation(true);
    }
    engine.start().unwrap();
    let far = speech_like(24_000, 10.0, Voice::Low, 3, FAR_RMS);
    let to_i16 = |x: &[f32]| -> Vec<i16> { x.iter().map(|&s| (s * 32767.0) as i16).collect() };
    let split = 5 * 24_000;
    let (first, second) = far.split_at(split);
    let mut out = Vec::with_capacity(total16);
    let read_until = |engine: &Engine, out: &mut Vec<f32>, n: usize| {
        while out.len() < n {
            match engine.read(Some(Duration::from_secs(10))).unwrap() {
                Some(chunk) => out.extend(chunk.iter().map(|&s| f32::from(s) / 32768.0)),
                None => panic!("no chunk within 10 s"),
            }
        }
    };
    engine.play(&to_i16(first), None).unwrap();
    match case.event {
        Event::None => {
            engine.play(&to_i16(second), None).unwrap();
            engine.end_turn(None).unwrap();
        }
        Event::Flush => {
            // Barge-in 4.5 s into the turn: the rest of the first part is dropped; then
            // a new turn plays.
            read_until(&engine, &mut out, (4.5 * 16_000.0) as usize);
            let report = engine.interrupt().unwrap();
            assert!(report.discarded_ms > 0.0, "the flush dropped audio");
            engine.play(&to_i16(second), None).unwrap();
            engine.end_turn(None).unwrap();
        }
        Event::Underrun => {
            // The first part plays out (no end of turn), the device runs dry for ~1 s.
            read_until(&engine, &mut out, (6.5 * 16_000.0) as usize);
            engine.play(&to_i16(second), None).unwrap();
            engine.end_turn(None).unwrap();
        }
    }
    read_until(&engine, &mut out, total16);
    out.truncate(total16);
    engine.stop().unwrap();
    let stats = engine.echo_stats();
    let (rec, _) = engine.recording();
    if case.event == Event::Underrun {
        assert!(engine.stats().underruns > 0, "the scenario underran");
    }
    // The echo at capture index k: gain × what was played at device frame 3k − delay.
    let delay = ((case.delay_ms / 1000.0 * f64::from(RATE)).round() as usize).max(480);
    let mut echo = vec![0.0f32; total16];
    for (k, e) in echo.iter_mut().enumerate() {
        let n = 3 * k;
        if n >= delay && n - delay < rec.len() {
            *e = case.gain * rec[n - delay];
        }
    }
    let first_sound = rec
        .iter()
        .position(|s| s.abs() > 1e-4)
        .expect("something played");
    Run {
        out,
        echo,
        near: near16,
        far_start: (first_sound + delay) / 3,
        stats,
    }
}

fn energy(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len().max(1) as f64
}

fn db(ratio: f64) -> f64 {
    10.0 * ratio.max(1e-20).log10()
}

/// Echo reduction in dB over capture samples `range`: echo energy without cancellation over
/// the energy of what was sent.
fn reduction_db(run: &Run, range: std::ops::Range<usize>) -> f64 {
    db(energy(&run.echo[range.clone()]) / energy(&run.out[range]))
}

/// Both signals through the same 4th-order Butterworth high-pass at 400 Hz, so that the
/// canceller's own 80 Hz high-pass filter (a phase shift at low frequencies, inaudible)
/// does not count against the correlation.
fn high_pass_400(x: &[f32]) -> Vec<f32> {
    let w = (std::f64::consts::PI * 400.0 / 16_000.0).tan();
    let mut y: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    for q in [0.5412, 1.3066] {
        let norm = 1.0 / (1.0 + w / q + w * w);
        let (b0, b1, b2) = (norm, -2.0 * norm, norm);
        let (a1, a2) = (2.0 * (w * w - 1.0) * norm, (1.0 - w / q + w * w) * norm);
        let (mut x1, mut x2, mut y1, mut y2) = (0.0, 0.0, 0.0, 0.0);
        for v in y.iter_mut() {
            let x0 = *v;
            let out = b0 * x0 + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2;
            x2 = x1;
            x1 = x0;
            y2 = y1;
            y1 = out;
            *v = out;
        }
    }
    y.into_iter().map(|v| v as f32).collect()
}

/// Normalised correlation of `out` with `reference` (both high-passed at 400 Hz) at the best
/// lag in 0..=max_lag.
fn best_correlation(
    out: &[f32],
    reference: &[f32],
    range: std::ops::Range<usize>,
    max_lag: usize,
) -> (f64, usize) {
    let out = &high_pass_400(out);
    let reference = &high_pass_400(reference);
    let r = &reference[range.clone()];
    let er: f64 = r.iter().map(|&v| f64::from(v).powi(2)).sum();
    (0..=max_lag)
        .map(|lag| {
            let o = &out[range.start + lag..range.end + lag];
            let eo: f64 = o.iter().map(|&v| f64::from(v).powi(2)).sum();
            let c: f64 = o
                .iter()
                .zip(r)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            (c / (eo * er).sqrt().max(1e-20), lag)
        })
        .fold((f64::MIN, 0), |a, b| if b.0 > a.0 { b } else { a })
}

/// Far-end-only stretch from 2 s after the echo starts to just before the near end.
fn far_only(run: &Run) -> std::ops::Range<usize> {
    run.far_start + 32_000..(NEAR_FROM * 16_000.0) as usize - 1_600
}

#[test]
fn without_cancellation_the_echo_comes_back_untouched() {
    let run = run(&Case {
        options: None,
        ..Case::default()
    });
    let r = reduction_db(&run, far_only(&run));
    assert!(
        r.abs() < 1.0,
        "the measurement itself: {r:.1} dB without a canceller"
    );
    assert_eq!(run.stats.frames_processed, 0);
}

#[test]
fn echo_is_reduced_30_db_for_every_delay_gain_and_skew() {
    let mut report = Vec::new();
    for &delay_ms in &[10.0, 40.0, 150.0, 300.0] {
        for &gain in &[1.0f32, 0.5] {
            for &skew_ppm in &[0.0, 200.0] {
                let run = run(&Case {
                    delay_ms,
                    gain,
                    skew_ppm,
                    ..Case::default()
                });
                let r = reduction_db(&run, far_only(&run));
                report.push(format!(
                    "delay {delay_ms} ms gain {gain} skew {skew_ppm} ppm: {r:.1} dB (library ERLE {:?}, delay {:?} ms, late {}, dropped {})",
                    run.stats.erle_db, run.stats.delay_ms, run.stats.reference_late_frames, run.stats.reference_dropped_frames
                ));
                assert!(r >= 30.0, "{}", report.join("\n"));
            }
        }
    }
    println!("{}", report.join("\n"));
}

#[test]
fn a_near_end_talker_is_kept_during_double_talk() {
    let run = run(&Case {
        near: true,
        gain: 0.5,
        ..Case::default()
    });
    let near = (NEAR_FROM * 16_000.0) as usize + 1_600..(NEAR_TO * 16_000.0) as usize - 1_600;
    let level = db(energy(&run.out[near.clone()]) / energy(&run.near[near.clone()]));
    let (corr, lag) = best_correlation(&run.out, &run.near, near.clone(), 800);
    let before = reduction_db(&run, far_only(&run));
    println!("near-end level {level:.1} dB, correlation {corr:.3} at lag {lag} samples, echo reduction before {before:.1} dB");
    assert!(
        level.abs() <= 6.0,
        "near-end level changed by {level:.1} dB"
    );
    assert!(corr >= 0.7, "near-end correlation {corr:.3}");
    assert!(before >= 30.0, "{before:.1} dB");
}

#[test]
fn a_flush_or_an_underrun_midway_does_not_make_it_diverge() {
    for event in [Event::Flush, Event::Underrun] {
        let run = run(&Case {
            event,
            ..Case::default()
        });
        // After the event (second part of the far end, from 7.5 s to the end).
        let after = (7.5 * 16_000.0) as usize..(11.5 * 16_000.0) as usize;
        let before = reduction_db(&run, run.far_start + 32_000..(4.4 * 16_000.0) as usize);
        let r = reduction_db(&run, after);
        println!("{event:?}: {before:.1} dB before, {r:.1} dB after");
        assert!(
            before >= 30.0 && r >= 30.0,
            "{event:?}: {before:.1} dB before, {r:.1} dB after"
        );
    }
}

#[test]
fn the_aec3_backend_cancels_too() {
    let run = run(&Case {
        options: Some(AecOptions {
            backend: AecBackend::Aec3,
            ..AecOptions::default()
        }),
        ..Case::default()
    });
    let r = reduction_db(&run, far_only(&run));
    println!("aec3: {r:.1} dB");
    assert!(r >= 30.0, "aec3: {r:.1} dB");
    assert_eq!(run.stats.backend, "aec3");
}
