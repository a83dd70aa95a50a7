//! Echo cancellation between two devices with different clocks: the speaker at 48 kHz and
//! the microphone at 44.1 kHz, each with its own period and a clock error in ppm, driven in
//! simulated time. The microphone hears the speaker after an acoustic delay, through the
//! clock difference (interpolated), so the echo slowly slides against the reference exactly
//! as with a USB headset against a laptop card. The engine only sees the callbacks.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use duplex_engine::aec::signals::{sample_at, speech_like, Voice};
use duplex_engine::aec::stage::{EchoShared, EchoStage};
use duplex_engine::aec::tap::reference_channel;
use duplex_engine::aec::AecOptions;
use duplex_engine::callback::{InputCallback, OutputCallback};
use duplex_engine::capture::capture_channel;
use duplex_engine::playback::playback_channel;
use duplex_engine::stats::SharedStats;

const OUT_RATE: u32 = 48_000;
const IN_RATE: u32 = 44_100;

struct Drift {
    /// Reduction (dB) in consecutive 5 s windows from 5 s on.
    windows: Vec<f64>,
    realignments: u64,
    late: u64,
}

/// Runs `seconds` of far-end speech with the input clock `ppm` fast relative to the output.
fn run(ppm: f64, seconds: f64, delay_ms: f64) -> Drift {
    let stats = Arc::new(SharedStats::default());
    let (mut producer, renderer) = playback_channel(
        OUT_RATE,
        OUT_RATE as usize * 120,
        4_800,
        240,
        Arc::clone(&stats),
    )
    .unwrap();
    let (writer, mut reader) =
        capture_channel(IN_RATE, IN_RATE as usize * 2, 20, Arc::clone(&stats)).unwrap();
    let (tap, clock, tap_reader) = reference_channel(OUT_RATE, IN_RATE, OUT_RATE as usize * 3);
    let shared = Arc::new(EchoShared::default());
    shared.enabled.store(true, Relaxed);
    let stage = EchoStage::new(
        tap_reader,
        IN_RATE,
        OUT_RATE,
        AecOptions::default(),
        Arc::clone(&shared),
    )
    .unwrap();
    reader.set_echo(stage);
    let mut out_cb =
        OutputCallback::new(renderer, 1, OUT_RATE, Arc::clone(&stats)).with_reference_tap(tap);
    let mut in_cb =
        InputCallback::new(writer, 1, IN_RATE, Arc::clone(&stats)).with_echo_clock(clock);

    let far = speech_like(24_000, seconds, Voice::Low, 11, 0.1);
    let pcm: Vec<i16> = far.iter().map(|&s| (s * 32767.0) as i16).collect();
    for chunk in pcm.chunks(24_000) {
        assert!(producer.try_play(chunk).unwrap());
    }
    producer.try_end_turn().unwrap();

    // Periods: 512 output frames, 441 input frames; true rates differ by `ppm`.
    let (p_out, p_in) = (512usize, 441usize);
    let out_rate = f64::from(OUT_RATE);
    let in_rate = f64::from(IN_RATE) * (1.0 + ppm * 1e-6);
    let gain = 0.5f32;
    let mut played: Vec<f32> = Vec::new();
    let mut out_buf = vec![0.0f32; p_out];
    let mut in_buf = vec![0.0f32; p_in];
    let mut echo_in: Vec<f32> = Vec::new();
    let mut captured: Vec<f32> = Vec::new();
    let (mut t_out, mut t_in) = (0.0f64, 0.003);
    let mut in_frames = 0usize;
    // The speaker plays what was rendered one period later (its buffer), then the room.
    let latency_s = p_out as f64 / out_rate + delay_ms / 1000.0;
    while t_in < seconds + 0.5 {
        if t_out <= t_in {
            out_cb.process(&mut out_buf);
            played.extend_from_slice(&out_buf);
            t_out += p_out as f64 / out_rate;
        } else {
            for (i, s) in in_buf.iter_mut().enumerate() {
                let t = (in_frames + i) as f64 / in_rate - latency_s;
                let x = t * out_rate;
                *s = gain * sample_at(&played, x);
            }
            echo_in.extend_from_slice(&in_buf);
            in_cb.process(&in_buf);
            in_frames += p_in;
            t_in += p_in as f64 / in_rate;
            while let Some(chunk) = reader.try_read() {
                captured.extend(chunk.iter().map(|&s| f32::from(s) / 32768.0));
            }
        }
    }
    let energy =
        |x: &[f32]| x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len().max(1) as f64;
    let mut windows = Vec::new();
    let mut w = 5.0;
    while w + 5.0 <= seconds {
        let e =
            &echo_in[(w * f64::from(IN_RATE)) as usize..((w + 5.0) * f64::from(IN_RATE)) as usize];
        let o = &captured[(w * 16_000.0) as usize..((w + 5.0) * 16_000.0) as usize];
        windows.push(10.0 * (energy(e) / energy(o).max(1e-20)).log10());
        w += 5.0;
    }
    let s = shared.snapshot();
    Drift {
        windows,
        realignments: s.realignments,
        late: s.reference_late_frames,
    }
}

#[test]
fn separate_clocks_200_ppm_apart_do_not_make_it_diverge() {
    for ppm in [0.0, 200.0, -200.0] {
        let d = run(ppm, 25.0, 30.0);
        println!(
            "{ppm} ppm: {:?} dB per 5 s window, {} realignments, {} late",
            d.windows
                .iter()
                .map(|w| format!("{w:.1}"))
                .collect::<Vec<_>>(),
            d.realignments,
            d.late
        );
        for (i, w) in d.windows.iter().enumerate() {
            assert!(
                *w >= 30.0,
                "{ppm} ppm: window {i} only {w:.1} dB: {:?}",
                d.windows
            );
        }
        assert_eq!(
            d.realignments, 0,
            "drift is followed smoothly, not by jumps"
        );
    }
}
