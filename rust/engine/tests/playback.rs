//! Flush, jitter buffer and playout position, driven through the real callback bodies.

mod common;

use std::sync::Arc;

use common::*;
use duplex_engine::callback::OutputCallback;
use duplex_engine::playback::{playback_channel, PlaybackProducer};
use duplex_engine::stats::SharedStats;

const RATE: u32 = 48_000;
const PERIOD: usize = 480;
const FADE: usize = 240; // 5 ms
const PREBUFFER: usize = 9_600; // 200 ms

fn setup() -> (PlaybackProducer, OutputCallback, Arc<SharedStats>) {
    let stats = Arc::new(SharedStats::default());
    let (producer, renderer) = playback_channel(
        RATE,
        RATE as usize * 10,
        PREBUFFER,
        FADE,
        Arc::clone(&stats),
    )
    .unwrap();
    let cb = OutputCallback::new(renderer, 1, RATE, Arc::clone(&stats));
    (producer, cb, stats)
}

fn render(cb: &mut OutputCallback, periods: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; PERIOD * periods];
    for block in out.chunks_mut(PERIOD) {
        cb.process(block);
    }
    out
}

#[test]
fn interrupt_silences_within_one_period_plus_fade_without_a_click() {
    let (mut producer, mut cb, stats) = setup();
    assert!(producer
        .try_play(&sine_i16(24_000, 440.0, 0.5, 24_000))
        .unwrap());
    let before = render(&mut cb, 20);
    assert!(rms(&before[PERIOD * 10..]) > 0.3, "the turn is playing");

    let report = producer.interrupt();
    let after = render(&mut cb, 10);
    let last_sound = after.iter().rposition(|s| s.abs() > 1e-6).unwrap_or(0);
    assert!(
        last_sound < PERIOD + FADE,
        "silent after {last_sound} frames; allowed one period plus the fade ({})",
        PERIOD + FADE
    );
    assert!(
        after[PERIOD..].iter().all(|&s| s == 0.0),
        "exact silence after the flush period"
    );
    // The fade must be no steeper than the sine itself: max step of a 440 Hz sine at 0.5.
    let sine_step = (0.5 * 2.0 * std::f64::consts::PI * 440.0 / f64::from(RATE)) as f32;
    let mut joined = before.clone();
    joined.extend_from_slice(&after);
    assert!(
        max_step(&joined) <= sine_step * 1.05,
        "click: step {}",
        max_step(&joined)
    );
    assert_eq!(stats.flushes.load(std::sync::atomic::Ordering::Relaxed), 1);

    // 20 periods at 48 kHz = 200 ms heard, = 4800 frames at 24 kHz.
    assert_eq!(report.received_frames, 24_000);
    assert!(
        (report.heard_frames as i64 - 4800).abs() <= 1,
        "heard {} frames",
        report.heard_frames
    );
    assert!(
        (report.discarded_ms - 800.0).abs() < 20.0,
        "{}",
        report.discarded_ms
    );
}

#[test]
fn audio_pushed_after_the_interrupt_is_kept() {
    let (mut producer, mut cb, _) = setup();
    producer
        .try_play(&sine_i16(24_000, 440.0, 0.5, 24_000))
        .unwrap();
    render(&mut cb, 25);
    producer.interrupt();
    // The next turn arrives before the callback has even seen the flush.
    producer
        .try_play(&sine_i16(24_000, 1000.0, 0.5, 12_000))
        .unwrap();
    producer.try_end_turn().unwrap();
    let out = render(&mut cb, 60);
    // After the fade, only the 1 kHz turn is heard, whole: 0.5 s of it. It follows the
    // fade directly: the flush leaves no gap before audio that is already queued.
    let loud: Vec<f32> = out[FADE..].to_vec();
    let start = loud.iter().position(|s| s.abs() > 1e-6).unwrap();
    let end = loud.iter().rposition(|s| s.abs() > 1e-6).unwrap();
    // 24 000 frames of turn, plus at most the 1 ms (48-frame) decay after its last sample.
    assert!(
        (24_000..=24_048).contains(&(end - start + 1)),
        "next turn spans {}",
        end - start + 1
    );
    let f = zero_crossing_freq(&loud[start + 100..start + 20_000], RATE);
    assert!((f - 1000.0).abs() < 5.0, "next turn frequency {f}");
}

#[test]
fn heard_ms_leaves_out_what_the_device_holds_and_what_was_consumed_since() {
    let (mut producer, mut cb, _) = setup();
    producer
        .try_play(&sine_i16(24_000, 440.0, 0.5, 48_000))
        .unwrap();
    // 20 periods consumed (9 600 frames, 200 ms at 48 kHz); the device says it still
    // holds 100 ms of them, as the native PulseAudio host does from its read index.
    render(&mut cb, 20);
    let shared = std::sync::Arc::clone(cb.renderer_mut().shared());
    shared.set_device_ahead(4_800);
    // Then 15 more periods (150 ms) are handed to the device before the next measurement:
    // they are in its queue, not heard, and the measurement (about now) must not count them.
    render(&mut cb, 15);
    let report = producer.interrupt();
    assert!(
        (100.0..110.0).contains(&report.heard_ms()),
        "heard {} ms: 200 ms consumed, 100 ms of it still in the device when measured \
         (plus the few ms since)",
        report.heard_ms()
    );

    // A device that says nothing (0) leaves all that was consumed counted as heard.
    let (mut producer, mut cb, _) = setup();
    producer
        .try_play(&sine_i16(24_000, 440.0, 0.5, 48_000))
        .unwrap();
    render(&mut cb, 20);
    cb.renderer_mut().shared().set_device_ahead(0);
    assert!((producer.interrupt().heard_ms() - 200.0).abs() < 0.5);
}

#[test]
fn flush_of_a_waiting_turn_drops_it_silently() {
    let (mut producer, mut cb, stats) = setup();
    // Less than the prebuffer: the turn waits, then is interrupted before it ever sounds.
    producer
        .try_play(&sine_i16(24_000, 440.0, 0.5, 2_400))
        .unwrap();
    let waiting = render(&mut cb, 5);
    assert!(waiting.iter().all(|&s| s == 0.0));
    producer.interrupt();
    let out = render(&mut cb, 5);
    assert!(out.iter().all(|&s| s == 0.0));
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(stats.flushes.load(Relaxed), 1);
    assert_eq!(stats.underruns.load(Relaxed), 0);
    assert_eq!(stats.frames_played.load(Relaxed), 0);
}

#[test]
fn prebuffer_then_underrun_then_end_of_turn() {
    use std::sync::atomic::Ordering::Relaxed;
    let (mut producer, mut cb, stats) = setup();
    // 100 ms queued: below the 200 ms prebuffer, so nothing plays yet.
    producer
        .try_play(&sine_i16(24_000, 440.0, 0.5, 2_400))
        .unwrap();
    assert!(render(&mut cb, 4).iter().all(|&s| s == 0.0));
    // 150 ms more: over the prebuffer, the turn starts.
    producer
        .try_play(&sine_i16(24_000, 440.0, 0.5, 3_600))
        .unwrap();
    let playing = render(&mut cb, 4);
    assert!(rms(&playing) > 0.2);
    assert_eq!(stats.underruns.load(Relaxed), 0);
    // Run dry mid-turn: one underrun, silence counted.
    render(&mut cb, 30);
    assert_eq!(stats.underruns.load(Relaxed), 1);
    assert!(stats.underrun_silence_frames.load(Relaxed) > 0);
    // A little more audio (below the prebuffer) and the end of the turn: it plays at once.
    producer
        .try_play(&sine_i16(24_000, 440.0, 0.5, 1_200))
        .unwrap();
    producer.try_end_turn().unwrap();
    let tail = render(&mut cb, 10);
    let start = tail.iter().position(|s| s.abs() > 1e-6).unwrap();
    let end = tail.iter().rposition(|s| s.abs() > 1e-6).unwrap();
    assert!(
        end - start >= 2_350,
        "the completed turn's tail played ({} frames)",
        end - start
    );
    // Finishing a complete turn is not an underrun.
    render(&mut cb, 10);
    assert_eq!(stats.underruns.load(Relaxed), 1);
}

#[test]
fn whole_turn_is_rendered_sample_for_sample() {
    // 24 kHz -> 48 kHz: every input sample of a complete turn comes out, in order, at 2x.
    let (mut producer, mut cb, _) = setup();
    let input = sine_i16(24_000, 300.0, 0.5, 24_000);
    for chunk in input.chunks(960) {
        producer.try_play(chunk).unwrap();
    }
    producer.try_end_turn().unwrap();
    let out = render(&mut cb, 120);
    let start = out.iter().position(|s| s.abs() > 1e-6).unwrap();
    let turn = &out[start..start + 48_000];
    let expected = sine_f32(RATE, 300.0, 0.5, 48_000);
    // Skip the 1 ms fade-in at the start and the edge of the resampler at the very end.
    let err = turn[48..47_000]
        .iter()
        .zip(&expected[48..47_000])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(err < 2e-3, "max error {err}");
    // After the turn: the 1 ms declick decay, then exact silence.
    assert!(out[start + 48_000 + 48..].iter().all(|&s| s == 0.0));
}

#[test]
fn stereo_i16_output_carries_the_same_signal_on_every_channel() {
    let stats = Arc::new(SharedStats::default());
    let (mut producer, renderer) =
        playback_channel(RATE, RATE as usize, 480, FADE, Arc::clone(&stats)).unwrap();
    let mut cb = OutputCallback::new(renderer, 2, RATE, stats);
    producer
        .try_play(&sine_i16(24_000, 440.0, 0.5, 4_800))
        .unwrap();
    let mut data = vec![0i16; PERIOD * 2 * 4];
    for block in data.chunks_mut(PERIOD * 2) {
        cb.process(block);
    }
    assert!(data.chunks(2).all(|f| f[0] == f[1]));
    let peak = data.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!((16_000..=16_500).contains(&peak), "peak {peak}");
}

#[test]
fn a_chunk_larger_than_the_ring_is_refused_and_nothing_is_lost() {
    let stats = Arc::new(SharedStats::default());
    let (mut producer, renderer) =
        playback_channel(RATE, 4_800, 480, FADE, Arc::clone(&stats)).unwrap();
    let mut cb = OutputCallback::new(renderer, 1, RATE, stats);
    producer
        .try_play(&sine_i16(24_000, 440.0, 0.5, 1_200))
        .unwrap();
    let err = producer.try_play(&vec![0i16; 24_000]).unwrap_err();
    assert!(
        err.to_string().contains("split it into smaller chunks"),
        "{err}"
    );
    // Full right now (not too large): refused without taking anything.
    producer
        .try_play(&sine_i16(24_000, 440.0, 0.5, 1_000))
        .unwrap();
    assert!(!producer.try_play(&vec![0i16; 1_000]).unwrap());
    producer.try_end_turn().unwrap();
    let mut out = vec![0.0f32; 9_600];
    cb.process(&mut out);
    let end = out.iter().rposition(|s| s.abs() > 1e-6).unwrap();
    // Both accepted chunks (2 200 frames at 24 kHz = 4 400 at 48 kHz) and the 1 ms decay.
    assert!((4_400..=4_448).contains(&(end + 1)), "{}", end + 1);
}

#[test]
fn an_underrun_grows_the_jitter_buffer_and_the_turn_waits_for_the_larger_one() {
    use std::sync::atomic::Ordering::Relaxed;
    let (mut producer, mut cb, stats) = setup();
    assert_eq!(stats.jitter_buffer_frames.load(Relaxed), PREBUFFER as u64);
    // 250 ms: over the 200 ms prebuffer, the turn plays, then runs dry.
    producer
        .try_play(&sine_i16(24_000, 440.0, 0.5, 6_000))
        .unwrap();
    render(&mut cb, 40);
    assert_eq!(stats.underruns.load(Relaxed), 1);
    let grown = stats.jitter_buffer_frames.load(Relaxed) as usize;
    assert!(grown > PREBUFFER, "the jitter buffer grew ({grown} frames)");
    // 250 ms again: enough for the old prebuffer, not for the grown one; it waits.
    producer
        .try_play(&sine_i16(24_000, 440.0, 0.5, 6_000))
        .unwrap();
    assert!(
        render(&mut cb, 4).iter().all(|&s| s == 0.0),
        "waits for the grown buffer"
    );
    // Once the grown buffer is there, the turn resumes.
    producer
        .try_play(&sine_i16(24_000, 440.0, 0.5, grown / 2))
        .unwrap();
    assert!(
        rms(&render(&mut cb, 4)) > 0.2,
        "resumes once the grown buffer is queued"
    );
}

#[test]
fn steady_delivery_shrinks_the_jitter_buffer_back_towards_the_prebuffer() {
    use std::sync::atomic::Ordering::Relaxed;
    let (mut producer, mut cb, stats) = setup();
    producer
        .try_play(&sine_i16(24_000, 440.0, 0.5, 6_000))
        .unwrap();
    render(&mut cb, 40); // runs dry: grows
    let grown = stats.jitter_buffer_frames.load(Relaxed);
    // 12 s of steady audio, delivered ahead of playback, in 100 ms chunks.
    for _ in 0..120 {
        producer
            .try_play(&sine_i16(24_000, 440.0, 0.5, 2_400))
            .unwrap();
        render(&mut cb, 10);
    }
    let now = stats.jitter_buffer_frames.load(Relaxed);
    assert!(
        now < grown,
        "shrank after steady delivery: {grown} -> {now}"
    );
    assert!(
        now >= PREBUFFER as u64,
        "never below the configured prebuffer"
    );
    assert_eq!(
        stats.underruns.load(Relaxed),
        1,
        "the steady part never ran dry"
    );
}
