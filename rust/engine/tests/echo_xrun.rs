//! Echo cancellation across host glitches on the virtual device: the input loses periods
//! (overruns) or the output callback is skipped while the device plays silence (underruns),
//! as a loaded machine does to a real sound card. The device stamps both callbacks with its
//! own clock, so the pairing of capture and reference moves by exactly the audio lost and the
//! canceller keeps its state: the echo stays removed after every glitch, and after a flush.
//!
//! The echo each chunk would carry is computed from the device's recording (which holds the
//! underruns' silence) and from the periods the input lost.

use std::time::Duration;

use duplex_engine::aec::signals::{speech_like, Voice};
use duplex_engine::{Backend, Engine, EngineConfig, VirtualConfig, VirtualInput, VirtualOutput};

const RATE: u32 = 48_000;
const PERIOD: usize = 480;
const SECONDS: f64 = 12.0;
const DELAY_MS: f64 = 40.0;
const GAIN: f32 = 0.5;
/// A glitch every 2 s, 5 periods (50 ms) long.
const EVERY: u32 = 200;
const LEN: u32 = 5;

struct Run {
    out: Vec<f32>,
    echo: Vec<f32>,
    /// Capture indices (16 kHz) where a glitch happened.
    glitches: Vec<usize>,
    shifts: u64,
    realignments: u64,
}

fn run(overruns: bool, underruns: bool, flush: bool, cancel: bool) -> Run {
    let total16 = (SECONDS * 16_000.0) as usize;
    let engine = Engine::new(EngineConfig {
        backend: Backend::Virtual(VirtualConfig {
            sample_rate: RATE,
            period_frames: PERIOD as u32,
            input: VirtualInput::Samples {
                samples: vec![0.0; total16 * 2],
                rate_hz: 16_000,
            },
            loopback_delay_ms: Some(DELAY_MS),
            loopback_gain: GAIN,
            output: VirtualOutput::Memory,
            speed: 0.0,
            overrun_every_periods: if overruns { EVERY } else { 0 },
            underrun_every_periods: if underruns { EVERY } else { 0 },
            xrun_periods: LEN,
            ..VirtualConfig::default()
        }),
        prebuffer_ms: 60,
        capture_buffer_ms: 100,
        ..EngineConfig::default()
    })
    .unwrap();
    engine.set_echo_cancellation(cancel);
    engine.start().unwrap();
    let far = speech_like(24_000, SECONDS, Voice::Low, 3, 0.1);
    let pcm: Vec<i16> = far.iter().map(|&s| (s * 32767.0) as i16).collect();
    let mut out = Vec::with_capacity(total16);
    let read_until = |out: &mut Vec<f32>, n: usize| {
        while out.len() < n {
            let chunk = engine
                .read(Some(Duration::from_secs(10)))
                .unwrap()
                .expect("a chunk within 10 s");
            out.extend(chunk.iter().map(|&s| f32::from(s) / 32768.0));
        }
    };
    if flush {
        // A barge-in at 5.5 s drops the rest of the first answer; a second one follows.
        let (first, second) = pcm.split_at(7 * 24_000);
        engine.play(first, None).unwrap();
        read_until(&mut out, (5.5 * 16_000.0) as usize);
        assert!(engine.interrupt().unwrap().discarded_ms > 0.0);
        engine.play(second, None).unwrap();
    } else {
        engine.play(&pcm, None).unwrap();
    }
    engine.end_turn(None).unwrap();
    read_until(&mut out, total16);
    out.truncate(total16);
    engine.stop().unwrap();
    let stats = engine.echo_stats();
    let (rec, _) = engine.recording();
    // Device input frame of every captured frame: the input skips the lost periods.
    let mut device_frame = Vec::with_capacity(total16 * 3 + PERIOD);
    let mut glitches = Vec::new();
    let mut n = 0u64;
    while device_frame.len() < total16 * 3 + PERIOD {
        let lost_in = overruns && VirtualConfig::xrun_lost(n, EVERY, LEN);
        let starts = VirtualConfig::xrun_lost(n, EVERY, LEN)
            && !VirtualConfig::xrun_lost(n.wrapping_sub(1), EVERY, LEN);
        if starts && device_frame.len() / 3 + 16_000 < total16 {
            glitches.push(device_frame.len() / 3);
        }
        if !lost_in {
            let base = n as usize * PERIOD;
            device_frame.extend(base..base + PERIOD);
        }
        n += 1;
    }
    let delay = (DELAY_MS / 1000.0 * f64::from(RATE)).round() as usize;
    let echo = (0..total16)
        .map(|k| {
            let f = device_frame[3 * k];
            if f >= delay && f - delay < rec.len() {
                GAIN * rec[f - delay]
            } else {
                0.0
            }
        })
        .collect();
    Run {
        out,
        echo,
        glitches,
        shifts: stats.shifts,
        realignments: stats.realignments,
    }
}

fn energy(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len().max(1) as f64
}

/// Below this echo energy (-60 dBFS) a window holds nothing to remove: the far end was
/// silent there (after a flush its next words may come later, depending on thread timing).
const ECHO_FLOOR: f64 = 1e-6;

/// Echo removed (dB) from 0.5 s after each glitch to the next one, past the first 2 s, in the
/// windows that hold echo.
fn after_each_glitch(run: &Run) -> Vec<(usize, f64)> {
    let mut ends: Vec<usize> = run.glitches.iter().skip(1).copied().collect();
    ends.push(run.out.len() - 1_600);
    run.glitches
        .iter()
        .zip(ends)
        .filter_map(|(&g, end)| {
            let from = g + 8_000;
            let echo = energy(&run.echo[from..end]);
            let r = 10.0 * (echo / energy(&run.out[from..end]).max(1e-20)).log10();
            (echo > ECHO_FLOOR).then_some((g, r))
        })
        .collect()
}

fn check(overruns: bool, underruns: bool, flush: bool) {
    let run = run(overruns, underruns, flush, true);
    let after = after_each_glitch(&run);
    let report = format!(
        "overruns {overruns} underruns {underruns} flush {flush}: {} shifts, {} realignments, \
         dB after each glitch {:?}",
        run.shifts,
        run.realignments,
        after.iter().map(|(g, r)| (g / 16, (r * 10.0).round() / 10.0)).collect::<Vec<_>>()
    );
    println!("{report}");
    assert!(after.len() >= 4, "{report}");
    assert!(after.iter().all(|&(_, r)| r >= 30.0), "{report}");
    assert_eq!(run.realignments, 0, "{report}");
    if overruns != underruns {
        // One stream lost audio the other did not: the pairing moved at every glitch. (When
        // both lose the same periods, nothing moves.)
        assert!(run.shifts >= after.len() as u64, "{report}");
    }
}

#[test]
fn overruns_shift_the_reference_by_the_audio_lost_and_the_echo_stays_removed() {
    check(true, false, false);
}

#[test]
fn underruns_below_the_engine_keep_the_echo_removed() {
    check(false, true, false);
}

#[test]
fn overruns_and_a_flush_keep_the_echo_removed() {
    check(true, false, true);
}

#[test]
fn overruns_and_underruns_in_the_same_periods_do_not_move_the_pairing() {
    let run = run(true, true, false, true);
    let after = after_each_glitch(&run);
    println!("both: {} shifts, dB after each glitch {after:?}", run.shifts);
    assert_eq!(run.shifts, 0, "both streams lost the same time: {after:?}");
}

#[test]
fn without_cancellation_the_computed_echo_is_what_was_captured() {
    let run = run(true, false, false, false);
    let after = after_each_glitch(&run);
    println!("without cancellation: {after:?}");
    assert!(after.iter().all(|&(_, r)| r.abs() < 1.0), "the measurement itself: {after:?}");
}
