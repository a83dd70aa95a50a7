//! The capture path through the real input callback: formats, channels, overflow, chunks.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use common::*;
use duplex_engine::callback::InputCallback;
use duplex_engine::capture::capture_channel;
use duplex_engine::stats::SharedStats;

#[test]
fn stereo_i16_at_48k_becomes_16k_mono_chunks_with_the_same_content() {
    let stats = Arc::new(SharedStats::default());
    let (writer, mut reader) = capture_channel(48_000, 96_000, 20, Arc::clone(&stats)).unwrap();
    let mut cb = InputCallback::new(writer, 2, 48_000, Arc::clone(&stats));
    let mono = sine_i16(48_000, 440.0, 0.5, 48_000);
    let stereo: Vec<i16> = mono.iter().flat_map(|&s| [s, s]).collect();
    for block in stereo.chunks(480 * 2) {
        cb.process(block);
    }
    let mut chunks = Vec::new();
    while let Some(chunk) = reader.try_read() {
        assert_eq!(chunk.len(), 320, "20 ms at 16 kHz");
        chunks.push(chunk);
    }
    // 1 s in, all but the resampler's last partial chunk out.
    assert!(chunks.len() >= 49, "{} chunks", chunks.len());
    let out: Vec<f32> = chunks
        .concat()
        .iter()
        .map(|&s| f32::from(s) / 32768.0)
        .collect();
    let expected = sine_f32(16_000, 440.0, 0.5, out.len());
    let err = out[160..]
        .iter()
        .zip(&expected[160..])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(err < 2e-3, "max error {err}");
    assert_eq!(stats.frames_captured.load(Relaxed), 48_000);
    assert_eq!(stats.capture_overflows.load(Relaxed), 0);
    assert_eq!(stats.chunks_read.load(Relaxed), chunks.len() as u64);
}

#[test]
fn full_ring_drops_the_newest_frames_and_counts_them() {
    let stats = Arc::new(SharedStats::default());
    let (writer, mut reader) = capture_channel(16_000, 1_000, 20, Arc::clone(&stats)).unwrap();
    let mut cb = InputCallback::new(writer, 1, 16_000, Arc::clone(&stats));
    let ramp: Vec<f32> = (0..1_600).map(|i| i as f32 / 4_000.0).collect();
    for block in ramp.chunks(160) {
        cb.process(block);
    }
    assert_eq!(stats.capture_overflow_frames.load(Relaxed), 600);
    assert_eq!(stats.capture_overflows.load(Relaxed), 4);
    // What was kept is the oldest audio, in order, unchanged.
    let mut got = Vec::new();
    while let Some(c) = reader.try_read() {
        got.extend(c);
    }
    assert_eq!(got.len(), 960);
    for (i, &s) in got.iter().enumerate() {
        let want = (ramp[i] * 32768.0).round() as i16;
        assert!((s - want).abs() <= 1, "frame {i}: {s} vs {want}");
    }
}

#[test]
fn every_sample_format_is_converted_to_the_same_level() {
    fn level_of<T: cpal::Sample>(block: &[T], channels: u16) -> f32
    where
        f32: cpal::FromSample<T>,
    {
        let stats = Arc::new(SharedStats::default());
        let (writer, _reader) = capture_channel(48_000, 48_000, 20, Arc::clone(&stats)).unwrap();
        let mut cb = InputCallback::new(writer, channels, 48_000, Arc::clone(&stats));
        cb.process(block);
        stats.input_rms.load()
    }
    use cpal::Sample;
    let f = sine_f32(48_000, 1000.0, 0.5, 4_800);
    let want = 0.5 / 2f32.sqrt();
    let as_i16: Vec<i16> = f.iter().map(|&s| s.to_sample::<i16>()).collect();
    let as_i32: Vec<i32> = f.iter().map(|&s| s.to_sample::<i32>()).collect();
    let as_u16: Vec<u16> = f.iter().map(|&s| s.to_sample::<u16>()).collect();
    let as_u8: Vec<u8> = f.iter().map(|&s| s.to_sample::<u8>()).collect();
    let as_f64: Vec<f64> = f.iter().map(|&s| f64::from(s)).collect();
    let quad: Vec<f32> = f.iter().flat_map(|&s| [s; 4]).collect();
    for (name, level, tolerance) in [
        ("f32", level_of(&f, 1), 1e-4),
        ("i16", level_of(&as_i16, 1), 1e-3),
        ("i32", level_of(&as_i32, 1), 1e-4),
        ("u16", level_of(&as_u16, 1), 1e-3),
        ("u8", level_of(&as_u8, 1), 1e-2),
        ("f64", level_of(&as_f64, 1), 1e-4),
        ("f32 x4 channels", level_of(&quad, 4), 1e-4),
    ] {
        assert!(
            (level - want).abs() < tolerance,
            "{name}: {level} vs {want}"
        );
    }
}

#[test]
fn a_backlog_stays_in_the_ring_and_is_resampled_a_few_chunks_at_a_time() {
    // 60 s captured while nobody read (a stalled reader). The first read used to resample
    // all of it at once (a 60 s buffer kept as capacity, and every later read shifted it);
    // now the ring keeps the backlog and each read takes a few chunks' worth. Nothing is
    // lost, in order.
    let stats = Arc::new(SharedStats::default());
    let (writer, mut reader) =
        capture_channel(48_000, 48_000 * 61, 20, Arc::clone(&stats)).unwrap();
    let mut cb = InputCallback::new(writer, 1, 48_000, Arc::clone(&stats));
    let tone = sine_f32(48_000, 440.0, 0.5, 48_000 * 60);
    for block in tone.chunks(480) {
        cb.process(block);
    }
    assert!(reader.try_read().is_some());
    assert!(
        reader.queued_frames() > 48_000 * 59,
        "the first read took {} frames out of the ring",
        48_000 * 60 - reader.queued_frames()
    );
    let mut chunks = 1;
    while let Some(chunk) = reader.try_read() {
        assert_eq!(chunk.len(), 320);
        chunks += 1;
    }
    // 60 s in, all but the resampler's last partial chunk out.
    assert!(chunks >= 2_999, "{chunks} chunks");
    assert_eq!(stats.capture_overflow_frames.load(Relaxed), 0);
}

/// The reader knows exactly how many device frames its next chunk still needs (the wait
/// loop sleeps on it): one frame fewer gives no chunk, that one frame gives it. The first
/// chunk needs its 20 ms plus the capture resampler's delay (under 7 ms), every later one
/// exactly 20 ms more.
#[test]
fn the_reader_knows_exactly_how_many_device_frames_a_chunk_still_needs() {
    let stats = Arc::new(SharedStats::default());
    let (writer, mut reader) = capture_channel(48_000, 96_000, 20, Arc::clone(&stats)).unwrap();
    let mut cb = InputCallback::new(writer, 1, 48_000, Arc::clone(&stats));
    let signal = sine_f32(48_000, 440.0, 0.3, 48_000);
    let mut pos = 0;
    let mut needs = Vec::new();
    for _ in 0..10 {
        let missing = reader.device_frames_missing();
        needs.push(missing);
        cb.process(&signal[pos..pos + missing - 1]);
        pos += missing - 1;
        assert!(reader.try_read().is_none(), "a chunk one frame early");
        cb.process(&signal[pos..pos + 1]);
        pos += 1;
        assert!(reader.try_read().is_some(), "no chunk when complete");
    }
    assert!(
        needs[0] > 960 && needs[0] < 960 + 7 * 48,
        "first chunk needs {}",
        needs[0]
    );
    assert!(needs[1..].iter().all(|&n| n == 960), "{needs:?}");
}

/// After a period lands, the reader's wait is at most until the period that completes its
/// chunk is due (never a fixed poll interval, never longer).
#[test]
fn the_wait_hint_ends_when_the_completing_period_is_due() {
    let stats = Arc::new(SharedStats::default());
    let (writer, mut reader) = capture_channel(48_000, 96_000, 20, Arc::clone(&stats)).unwrap();
    let mut cb = InputCallback::new(writer, 1, 48_000, Arc::clone(&stats));
    cb.process(&[0.0f32; 480]);
    assert!(reader.try_read().is_none());
    let missing = reader.device_frames_missing();
    let periods = missing.div_ceil(480) as u64;
    let hint = reader.wait_hint();
    // Only the upper bound: how much of it is left depends on how fast this thread ran.
    assert!(
        hint <= std::time::Duration::from_millis(10 * periods),
        "{hint:?} for {missing}"
    );
}
