//! Echo cancellation figures for `benches/RESULTS.md`: every backend (and none) on the same
//! signals, in one run, in simulated time (no sound card, no sleeping).
//!
//! The engine's own callbacks and capture reader run against a simulated room: the speaker
//! (48 kHz, 512-frame periods) plays what the output callback rendered one period later; the
//! microphone (44.1 kHz, 441-frame periods, its own clock) hears it through an echo path.
//!
//! ```text
//! cargo run --release -p duplex-engine --example echo_bench > echo.json
//! ```
//! Prints one JSON object; `python -m duplex.bench.echo_report echo.json` turns it into the
//! RESULTS.md tables and the ERLE-over-time plot.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use duplex_engine::aec::signals::{sample_at, speech_like, Voice};
use duplex_engine::aec::stage::{EchoShared, EchoStage};
use duplex_engine::aec::tap::reference_channel;
use duplex_engine::aec::{AecBackend, AecOptions};
use duplex_engine::callback::{InputCallback, OutputCallback};
use duplex_engine::capture::capture_channel;
use duplex_engine::playback::playback_channel;
use duplex_engine::stats::SharedStats;

const OUT_RATE: u32 = 48_000;
const IN_RATE: u32 = 44_100;
const SECONDS: f64 = 16.0;
const NEAR_FROM: f64 = 10.0;
const NEAR_TO: f64 = 14.0;

#[derive(Clone, Copy, PartialEq)]
enum Path {
    /// mic = 0.5 × speaker(t − 40 ms).
    Simple,
    /// Soft-clipped speaker, 40 ms bulk delay, direct path −6 dB, an RT60 250 ms tail,
    /// white noise at −65 dBFS.
    Room,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

/// A room impulse response at the input rate: direct path then an exponentially decaying
/// noise tail (RT60 250 ms), the whole response 0.5 in amplitude at its peak.
fn room_ir() -> Vec<f32> {
    let fs = f64::from(IN_RATE);
    let n = (0.3 * fs) as usize;
    let mut rng = Rng(0x1234_5678);
    let decay = (-6.9 / (0.25 * fs)).exp(); // -60 dB over 250 ms
    let mut ir = vec![0.0f32; n];
    ir[0] = 0.5;
    let mut g = 0.12;
    for (i, v) in ir.iter_mut().enumerate().skip((0.002 * fs) as usize) {
        g *= decay;
        *v += (g * rng.next()) as f32;
        let _ = i;
    }
    ir
}

struct Outcome {
    /// Echo (and noise) the capture would carry without cancellation, at the input rate.
    echo: Vec<f32>,
    near: Vec<f32>,
    out: Vec<f32>,
    cost_mean_us: f64,
    cost_p99_us: f64,
    erle_reported: Option<f64>,
    delay_reported: Option<f64>,
}

fn run(options: Option<AecOptions>, path: Path, ppm: f64, double_talk: bool) -> Outcome {
    let stats = Arc::new(SharedStats::default());
    let (mut producer, renderer) =
        playback_channel(OUT_RATE, OUT_RATE as usize * 120, 4_800, 240, Arc::clone(&stats)).unwrap();
    let (writer, mut reader) =
        capture_channel(IN_RATE, IN_RATE as usize * 2, 20, Arc::clone(&stats)).unwrap();
    let (tap, clock, tap_reader) = reference_channel(OUT_RATE, IN_RATE, OUT_RATE as usize * 3);
    let shared = Arc::new(EchoShared::default());
    shared.enabled.store(options.is_some(), Relaxed);
    let stage = EchoStage::new(
        tap_reader,
        IN_RATE,
        OUT_RATE,
        options.unwrap_or_default(),
        Arc::clone(&shared),
    )
    .unwrap();
    reader.set_echo(stage);
    let mut out_cb =
        OutputCallback::new(renderer, 1, OUT_RATE, Arc::clone(&stats)).with_reference_tap(tap);
    let mut in_cb =
        InputCallback::new(writer, 1, IN_RATE, Arc::clone(&stats)).with_echo_clock(clock);

    let far = speech_like(24_000, SECONDS, Voice::Low, 5, 0.1);
    let pcm: Vec<i16> = far.iter().map(|&s| (s * 32767.0) as i16).collect();
    for chunk in pcm.chunks(24_000) {
        assert!(producer.try_play(chunk).unwrap());
    }
    producer.try_end_turn().unwrap();
    let mut near = vec![0.0f32; (SECONDS * f64::from(IN_RATE)) as usize + 44_100];
    if double_talk {
        let talk = speech_like(IN_RATE, NEAR_TO - NEAR_FROM, Voice::High, 9, 0.05);
        let from = (NEAR_FROM * f64::from(IN_RATE)) as usize;
        near[from..from + talk.len()].copy_from_slice(&talk);
    }
    let ir = room_ir();
    let mut noise = Rng(42);
    let (p_out, p_in) = (512usize, 441usize);
    let out_rate = f64::from(OUT_RATE);
    let in_rate = f64::from(IN_RATE) * (1.0 + ppm * 1e-6);
    let latency_s = p_out as f64 / out_rate + 0.040;
    let mut played: Vec<f32> = Vec::new();
    let mut heard: Vec<f32> = Vec::new(); // the speaker as the mic's clock samples it
    let mut out_buf = vec![0.0f32; p_out];
    let mut in_buf = vec![0.0f32; p_in];
    let mut echo: Vec<f32> = Vec::new();
    let mut out: Vec<f32> = Vec::new();
    let (mut t_out, mut t_in) = (0.0f64, 0.003);
    let mut in_frames = 0usize;
    while t_in < SECONDS + 0.3 {
        if t_out <= t_in {
            out_cb.process(&mut out_buf);
            played.extend_from_slice(&out_buf);
            t_out += p_out as f64 / out_rate;
            continue;
        }
        for (i, s) in in_buf.iter_mut().enumerate() {
            let t = (in_frames + i) as f64 / in_rate - latency_s;
            let x = sample_at(&played, t * out_rate);
            let e = match path {
                Path::Simple => 0.5 * x,
                Path::Room => {
                    heard.push((x * 2.0).tanh() * 0.5);
                    let n = heard.len();
                    let taps = ir.len().min(n);
                    let mut acc = 0.0f32;
                    for k in 0..taps {
                        acc += ir[k] * heard[n - 1 - k];
                    }
                    acc + (noise.next() * 10f64.powf(-65.0 / 20.0) * 3f64.sqrt()) as f32
                }
            };
            echo.push(e);
            *s = e + near[in_frames + i];
        }
        in_cb.process(&in_buf);
        in_frames += p_in;
        t_in += p_in as f64 / in_rate;
        while let Some(chunk) = reader.try_read() {
            out.extend(chunk.iter().map(|&s| f32::from(s) / 32768.0));
        }
    }
    let s = shared.snapshot();
    Outcome {
        echo,
        near,
        out,
        cost_mean_us: s.cost_mean_us,
        cost_p99_us: s.cost_p99_us,
        erle_reported: s.erle_db,
        delay_reported: s.delay_ms,
    }
}

fn energy(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len().max(1) as f64
}

fn db(x: f64) -> f64 {
    10.0 * x.max(1e-20).log10()
}

/// Reduction in dB over seconds `a..b`: echo energy (input rate) over output energy (16 kHz).
fn reduction(o: &Outcome, a: f64, b: f64) -> f64 {
    let e = &o.echo[(a * f64::from(IN_RATE)) as usize..(b * f64::from(IN_RATE)) as usize];
    let y = &o.out[(a * 16_000.0) as usize..(b * 16_000.0) as usize];
    db(energy(e) / energy(y))
}

/// The near end at 16 kHz (for level and correlation).
fn near16(o: &Outcome) -> Vec<f32> {
    duplex_engine::wav::resample_all(&o.near, IN_RATE, 16_000).unwrap()
}

fn best_lag(out: &[f32], reference: &[f32], a: usize, b: usize) -> (f64, usize) {
    let r = &reference[a..b];
    let er: f64 = r.iter().map(|&v| f64::from(v).powi(2)).sum();
    (0..=640)
        .map(|lag| {
            let o = &out[a + lag..b + lag];
            let eo: f64 = o.iter().map(|&v| f64::from(v).powi(2)).sum();
            let c: f64 = o.iter().zip(r).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum();
            (c / (eo * er).sqrt().max(1e-20), lag)
        })
        .fold((f64::MIN, 0), |a, b| if b.0 > a.0 { b } else { a })
}

fn main() {
    let backends: Vec<(&str, Option<AecOptions>)> = vec![
        ("none", None),
        ("sonora", Some(AecOptions::default())),
        (
            "sonora (no NS)",
            Some(AecOptions {
                noise_suppression: false,
                ..AecOptions::default()
            }),
        ),
        (
            "aec3",
            Some(AecOptions {
                backend: AecBackend::Aec3,
                ..AecOptions::default()
            }),
        ),
    ];
    let mut rows = Vec::new();
    for (name, options) in &backends {
        let simple = run(*options, Path::Simple, 0.0, true);
        let room = run(*options, Path::Room, 0.0, true);
        let drift = run(*options, Path::Simple, 200.0, false);
        let windows: Vec<String> = (0..(NEAR_FROM * 2.0) as usize - 1)
            .map(|k| format!("{:.1}", reduction(&simple, k as f64 * 0.5, k as f64 * 0.5 + 0.5)))
            .collect();
        let convergence = (0..windows.len())
            .find(|&k| windows[k..].iter().all(|w| w.parse::<f64>().unwrap_or(0.0) >= 30.0))
            .map(|k| k as f64 * 0.5);
        let near = near16(&simple);
        let (a, b) = (
            (NEAR_FROM * 16_000.0) as usize + 1_600,
            (NEAR_TO * 16_000.0) as usize - 1_600,
        );
        let kept = db(energy(&simple.out[a..b]) / energy(&near[a..b]));
        let (corr, lag) = best_lag(&simple.out, &near, a, b);
        let room_near = near16(&room);
        let room_kept = db(energy(&room.out[a..b]) / energy(&room_near[a..b]));
        rows.push(format!(
            concat!(
                "{{\"backend\":\"{}\",\"simple_db\":{:.1},\"room_db\":{:.1},\"drift200_db\":{:.1},",
                "\"near_kept_db\":{:.1},\"room_near_kept_db\":{:.1},\"near_correlation\":{:.3},",
                "\"added_latency_ms\":{:.1},\"convergence_s\":{},\"cost_mean_us\":{:.1},\"cost_p99_us\":{:.1},",
                "\"erle_reported_db\":{},\"delay_reported_ms\":{},\"erle_windows_db\":[{}]}}"
            ),
            name,
            reduction(&simple, 2.0, NEAR_FROM - 0.2),
            reduction(&room, 2.0, NEAR_FROM - 0.2),
            reduction(&drift, 2.0, SECONDS - 0.5),
            kept,
            room_kept,
            corr,
            lag as f64 / 16.0,
            convergence.map_or("null".into(), |c| format!("{c}")),
            simple.cost_mean_us,
            simple.cost_p99_us,
            simple
                .erle_reported
                .map_or("null".into(), |v| format!("{v:.1}")),
            simple
                .delay_reported
                .map_or("null".into(), |v| format!("{v:.0}")),
            windows.join(",")
        ));
        eprintln!("{}", rows.last().unwrap());
    }
    println!("{{\"rows\":[{}]}}", rows.join(","));
}
