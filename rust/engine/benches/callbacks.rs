//! Criterion benchmarks of the real-time device callback bodies, per 480-frame period
//! (10 ms at 48 kHz), and of the SPSC ring operations they are built on.
//!
//! Why: the callbacks run on the device thread with a hard 10 ms deadline per period; these
//! numbers show how much of that budget the engine itself uses.
//!
//! * `output_callback/playing_*`: [`OutputCallback::process`] into a stereo device buffer
//!   while a turn is really playing. The playback ring is topped up through the real
//!   [`PlaybackProducer`] (24 kHz `i16` → 48 kHz resampling) *outside* the timed section,
//!   between runs of at most [`RUN_PERIODS`] periods, so it never underruns; every run
//!   asserts that `frames_played` advanced by exactly one period per call and that no
//!   underrun was counted.
//! * `output_callback/idle_f32_stereo`: the same body with nothing queued (silence), asserted
//!   not to play anything.
//! * `input_callback/*`: [`InputCallback::process`] for stereo `f32` and `i16` device
//!   buffers. The capture ring is emptied outside the timed section, so every call really
//!   copies into the ring instead of taking the (cheaper) overflow path; asserted per run.
//! * `ring/*`: the raw `rtrb` operations the callbacks use on 480 `f32` frames:
//!   `push_partial_slice` (capture side) and `read_chunk` + copy + `commit_all` (render side),
//!   separately and as a round trip. Single-threaded, so the ring's memory is hot in this
//!   core's cache; across threads the consumer also pays for cache-line transfers.
//!
//! Timed sections use `iter_custom` with runs of many consecutive calls so that the clock
//! overhead is amortised and the untimed ring maintenance never lands inside a measurement.

use std::hint::black_box;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use duplex_engine::callback::{InputCallback, OutputCallback};
use duplex_engine::capture::{capture_channel, CaptureReader};
use duplex_engine::playback::{playback_channel, PlaybackProducer};
use duplex_engine::stats::SharedStats;

/// Device rate of every benchmark here.
const RATE: u32 = 48_000;
/// Frames per device period: 10 ms at 48 kHz.
const PERIOD: usize = 480;
/// Device channels.
const CHANNELS: u16 = 2;
/// Ring capacities: 2 s at 48 kHz (the engine's default capture ring).
const RING_FRAMES: usize = 2 * RATE as usize;
/// Playback prebuffer (the engine's default, 200 ms) and fade (5 ms).
const PREBUFFER: usize = RATE as usize / 5;
const FADE: usize = RATE as usize / 200;
/// Periods timed back to back between two untimed ring refills / drains.
const RUN_PERIODS: u64 = 64;
/// Model audio pushed per `try_play`: 40 ms at 24 kHz.
const MODEL_CHUNK: usize = 960;

fn model_tone() -> Vec<i16> {
    (0..MODEL_CHUNK)
        .map(|i| {
            (8_000.0 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 24_000.0).sin()) as i16
        })
        .collect()
}

/// Pushes model audio until at least `frames` device frames (and the prebuffer) are queued.
fn top_up(producer: &mut PlaybackProducer, tone: &[i16], frames: usize) {
    let target = frames.max(PREBUFFER) as u64;
    while producer.shared().queued_frames() < target {
        assert!(
            producer.try_play(tone).unwrap(),
            "playback ring too small for the run"
        );
    }
}

/// A playing output callback: audio queued and one period already rendered.
fn playing_output(stats: &Arc<SharedStats>) -> (PlaybackProducer, OutputCallback, Vec<i16>) {
    let (mut producer, renderer) =
        playback_channel(RATE, RING_FRAMES, PREBUFFER, FADE, Arc::clone(stats)).unwrap();
    let mut cb = OutputCallback::new(renderer, CHANNELS, RATE, Arc::clone(stats));
    let tone = model_tone();
    top_up(&mut producer, &tone, PREBUFFER + PERIOD);
    let mut buf = vec![0.0f32; PERIOD * usize::from(CHANNELS)];
    cb.process(&mut buf);
    assert_eq!(
        stats.frames_played.load(Relaxed),
        PERIOD as u64,
        "not playing"
    );
    (producer, cb, tone)
}

/// Times `iters` periods of a playing output callback writing samples of type `T`.
fn time_playing<T>(
    producer: &mut PlaybackProducer,
    cb: &mut OutputCallback,
    tone: &[i16],
    stats: &SharedStats,
    buf: &mut [T],
    iters: u64,
) -> Duration
where
    T: cpal::Sample + cpal::FromSample<f32>,
{
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(RUN_PERIODS);
        // Untimed: keep one spare period queued after the run, so the ring never runs dry.
        top_up(producer, tone, (n as usize + 1) * PERIOD);
        let played = stats.frames_played.load(Relaxed);
        let start = Instant::now();
        for _ in 0..n {
            cb.process(black_box(&mut *buf));
        }
        total += start.elapsed();
        assert_eq!(
            stats.frames_played.load(Relaxed) - played,
            n * PERIOD as u64,
            "the output callback was not playing for the whole run"
        );
        left -= n;
    }
    assert_eq!(
        stats.underruns.load(Relaxed),
        0,
        "underrun during the benchmark"
    );
    total
}

fn output_callback(c: &mut Criterion) {
    let mut group = c.benchmark_group("output_callback");

    let stats = Arc::new(SharedStats::default());
    let (mut producer, mut cb, tone) = playing_output(&stats);
    let mut buf = vec![0.0f32; PERIOD * usize::from(CHANNELS)];
    group.bench_function("playing_f32_stereo_480", |b| {
        b.iter_custom(|iters| time_playing(&mut producer, &mut cb, &tone, &stats, &mut buf, iters));
    });

    let stats = Arc::new(SharedStats::default());
    let (mut producer, mut cb, tone) = playing_output(&stats);
    let mut buf = vec![0i16; PERIOD * usize::from(CHANNELS)];
    group.bench_function("playing_i16_stereo_480", |b| {
        b.iter_custom(|iters| time_playing(&mut producer, &mut cb, &tone, &stats, &mut buf, iters));
    });

    let stats = Arc::new(SharedStats::default());
    let (_producer, renderer) =
        playback_channel(RATE, RING_FRAMES, PREBUFFER, FADE, Arc::clone(&stats)).unwrap();
    let mut cb = OutputCallback::new(renderer, CHANNELS, RATE, Arc::clone(&stats));
    let mut buf = vec![0.0f32; PERIOD * usize::from(CHANNELS)];
    group.bench_function("idle_f32_stereo_480", |b| {
        b.iter(|| cb.process(black_box(&mut buf[..])));
    });
    assert_eq!(
        stats.frames_played.load(Relaxed),
        0,
        "idle case played audio"
    );
    assert!(stats.frames_rendered.load(Relaxed) > 0);
    assert!(buf.iter().all(|&s| s == 0.0), "idle output is not silence");

    group.finish();
}

/// Times `iters` periods of the input callback; the capture ring is emptied between runs.
fn time_input<T>(
    cb: &mut InputCallback,
    reader: &mut CaptureReader,
    stats: &SharedStats,
    data: &[T],
    iters: u64,
) -> Duration
where
    T: cpal::Sample,
    f32: cpal::FromSample<T>,
{
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(RUN_PERIODS);
        reader.clear(); // untimed, O(1): the run below always has room
        let captured = stats.frames_captured.load(Relaxed);
        let start = Instant::now();
        for _ in 0..n {
            cb.process(black_box(data));
        }
        total += start.elapsed();
        assert_eq!(
            stats.frames_captured.load(Relaxed) - captured,
            n * PERIOD as u64
        );
        assert_eq!(
            reader.queued_frames(),
            n as usize * PERIOD,
            "frames were dropped"
        );
        left -= n;
    }
    assert_eq!(stats.capture_overflows.load(Relaxed), 0, "capture overflow");
    total
}

fn input_callback(c: &mut Criterion) {
    let mut group = c.benchmark_group("input_callback");
    let stereo_f32: Vec<f32> = (0..PERIOD * usize::from(CHANNELS))
        .map(|i| 0.25 * (i as f32 * 0.05).sin())
        .collect();
    let stereo_i16: Vec<i16> = stereo_f32.iter().map(|&s| (s * 32_767.0) as i16).collect();

    let stats = Arc::new(SharedStats::default());
    let (writer, mut reader) = capture_channel(RATE, RING_FRAMES, 20, Arc::clone(&stats)).unwrap();
    let mut cb = InputCallback::new(writer, CHANNELS, RATE, Arc::clone(&stats));
    group.bench_function("f32_stereo_480", |b| {
        b.iter_custom(|iters| time_input(&mut cb, &mut reader, &stats, &stereo_f32, iters));
    });

    let stats = Arc::new(SharedStats::default());
    let (writer, mut reader) = capture_channel(RATE, RING_FRAMES, 20, Arc::clone(&stats)).unwrap();
    let mut cb = InputCallback::new(writer, CHANNELS, RATE, Arc::clone(&stats));
    group.bench_function("i16_stereo_480", |b| {
        b.iter_custom(|iters| time_input(&mut cb, &mut reader, &stats, &stereo_i16, iters));
    });

    group.finish();
}

/// The render side's read, exactly as `PlaybackRenderer` does it.
#[inline]
fn pop_period(rx: &mut rtrb::Consumer<f32>, out: &mut [f32]) {
    let chunk = rx.read_chunk(out.len()).expect("ring holds a period");
    let (a, b) = chunk.as_slices();
    out[..a.len()].copy_from_slice(a);
    out[a.len()..].copy_from_slice(b);
    chunk.commit_all();
}

/// Empties the ring in O(1) (moves the read index only).
fn drain(rx: &mut rtrb::Consumer<f32>) {
    let n = rx.slots();
    rx.read_chunk(n).unwrap().commit_all();
}

fn ring(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring");
    let block: Vec<f32> = (0..PERIOD).map(|i| (i as f32 * 0.01).sin()).collect();
    let mut out = vec![0.0f32; PERIOD];

    // Capture side: push 480 frames (the ring is drained, untimed, between runs).
    let (mut tx, mut rx) = rtrb::RingBuffer::<f32>::new(RING_FRAMES);
    group.bench_function("push_480_f32", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(RUN_PERIODS);
                drain(&mut rx);
                let start = Instant::now();
                for _ in 0..n {
                    let (_, rest) = tx.push_partial_slice(black_box(&block[..]));
                    black_box(rest);
                }
                total += start.elapsed();
                assert_eq!(rx.slots(), n as usize * PERIOD, "push dropped frames");
                left -= n;
            }
            total
        });
    });

    // Render side: pop 480 frames (the ring is refilled, untimed, between runs).
    let (mut tx, mut rx) = rtrb::RingBuffer::<f32>::new(RING_FRAMES);
    group.bench_function("pop_480_f32", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(RUN_PERIODS);
                while rx.slots() < n as usize * PERIOD {
                    let (_, rest) = tx.push_partial_slice(&block);
                    assert!(rest.is_empty());
                }
                let start = Instant::now();
                for _ in 0..n {
                    pop_period(&mut rx, black_box(&mut out[..]));
                }
                total += start.elapsed();
                left -= n;
            }
            total
        });
    });

    // Both in one thread: push a period, pop it again.
    let (mut tx, mut rx) = rtrb::RingBuffer::<f32>::new(RING_FRAMES);
    group.bench_function("push_pop_480_f32", |b| {
        b.iter(|| {
            let (_, rest) = tx.push_partial_slice(black_box(&block[..]));
            debug_assert!(rest.is_empty());
            pop_period(&mut rx, black_box(&mut out[..]));
        });
    });

    group.finish();
}

criterion_group!(benches, output_callback, input_callback, ring);
criterion_main!(benches);
