//! Criterion throughput benchmarks of [`StreamResampler`], the streaming resampler that runs
//! on the non-real-time side of the rings, for the four conversions duplex uses in practice:
//!
//! * capture: 48 kHz → 16 kHz and 44.1 kHz → 16 kHz (device rate → model input rate);
//! * playback: 24 kHz → 48 kHz and 24 kHz → 44.1 kHz (model output rate → device rate).
//!
//! Why: resampling is the most expensive per-sample work in the engine and it runs on the
//! caller's (Python's) thread, so it must be many times faster than real time.
//!
//! Each iteration feeds one 10 ms block of input (a 440 Hz sine) into a resampler that keeps
//! its state across iterations, exactly as the capture reader and playback producer do, and
//! the output vector is reused (cleared, never reallocated). Throughput is reported as
//! `Throughput::Elements(input frames per block)`, so criterion prints input frames per
//! second; divide by the input rate to get "× real time" (seconds of audio per CPU second).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use duplex_engine::resample::StreamResampler;

/// (input rate, output rate) pairs, in Hz.
const CONVERSIONS: [(u32, u32); 4] = [
    (48_000, 16_000),
    (44_100, 16_000),
    (24_000, 48_000),
    (24_000, 44_100),
];

fn sine(rate: u32, frames: usize) -> Vec<f32> {
    (0..frames)
        .map(|i| 0.5 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin())
        .collect()
}

fn resampler(c: &mut Criterion) {
    let mut group = c.benchmark_group("resampler");
    for (input_rate, output_rate) in CONVERSIONS {
        let block_frames = input_rate as usize / 100; // 10 ms of input
        let block = sine(input_rate, block_frames);
        let mut r = StreamResampler::new(input_rate, output_rate).unwrap();
        let mut out: Vec<f32> = Vec::with_capacity(4 * block_frames);
        // Warm the streaming state (and the output vector's capacity) before timing.
        for _ in 0..10 {
            out.clear();
            r.process(&block, &mut out);
        }
        assert!(
            !out.is_empty(),
            "{input_rate}->{output_rate} produced nothing"
        );

        group.throughput(Throughput::Elements(block_frames as u64));
        let id = BenchmarkId::new(format!("{input_rate}_to_{output_rate}"), "10ms_blocks");
        group.bench_function(id, |b| {
            b.iter(|| {
                out.clear();
                r.process(black_box(&block), &mut out);
                black_box(&out);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, resampler);
criterion_main!(benches);
