//! Proof that the callback bodies never allocate: capture, render, overflow, underrun,
//! prebuffering, flush and fade, non-finite input, in several sample formats and channel
//! counts.
//!
//! The test binary installs `assert_no_alloc`'s allocator; with its `warn_debug` feature a
//! violation is counted instead of aborting, and the count must stay zero.

use std::sync::Arc;

use assert_no_alloc::{assert_no_alloc, reset_violation_count, violation_count, AllocDisabler};
use duplex_engine::aec::tap::reference_channel;
use duplex_engine::callback::{InputCallback, OutputCallback};
use duplex_engine::capture::capture_channel;
use duplex_engine::playback::playback_channel;
use duplex_engine::stats::SharedStats;

#[global_allocator]
static ALLOCATOR: AllocDisabler = AllocDisabler;

#[test]
fn callbacks_never_allocate() {
    reset_violation_count();
    let stats = Arc::new(SharedStats::default());
    let rate = 48_000;
    let (mut producer, renderer) =
        playback_channel(rate, rate as usize, 4_800, 240, Arc::clone(&stats)).unwrap();
    // The echo canceller's reference tap and pairing clock ride along; its ring (about
    // 100 ms) is drained only now and then, so it overflows too.
    let (tap, clock, mut tap_reader) = reference_channel(rate, rate, 4_800);
    let mut out_cb =
        OutputCallback::new(renderer, 2, rate, Arc::clone(&stats)).with_reference_tap(tap);
    let (writer, mut reader) = capture_channel(rate, 4_800, 20, Arc::clone(&stats)).unwrap();
    let mut in_cb = InputCallback::new(writer, 2, rate, Arc::clone(&stats)).with_echo_clock(clock);
    let mut tapped = 0usize;

    let tone: Vec<i16> = (0..2_400).map(|i| ((i % 48) as i16 - 24) * 500).collect();
    let mut out_f32 = vec![0.0f32; 960];
    let mut out_i16 = vec![0i16; 960];
    let mut out_i32 = vec![0i32; 1_024 * 2 + 6]; // odd, larger-than-period buffer
    let input_f32 = vec![0.25f32; 960];
    let input_i16 = vec![1_000i16; 960];
    // A broken driver: NaN, ±inf and overflowing values, replaced and counted in place.
    let input_bad: Vec<f32> = (0..960)
        .map(|i| match i % 4 {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => f32::MAX,
            _ => 0.5,
        })
        .collect();

    let mut rounds = 0;
    for round in 0..200 {
        // Non-real-time side, outside the check: queue audio, sometimes end or flush a turn.
        if round % 5 == 0 {
            producer.try_play(&tone).unwrap();
        }
        if round % 20 == 10 {
            producer.try_end_turn().unwrap();
        }
        if round % 25 == 24 {
            producer.interrupt();
        }
        if round % 7 == 0 {
            while reader.try_read().is_some() {}
        }
        if round % 11 == 0 {
            tap_reader.drain(|_, samples| tapped += samples.count());
        }
        assert_no_alloc(|| {
            out_cb.process(&mut out_f32);
            out_cb.process(&mut out_i16);
            out_cb.process(&mut out_i32);
            // The capture ring (100 ms) overflows regularly between reads.
            in_cb.process(&input_f32);
            in_cb.process(&input_i16);
            in_cb.process(&input_bad);
        });
        rounds += 1;
    }
    assert_eq!(rounds, 200);
    use std::sync::atomic::Ordering::Relaxed;
    // Every path was taken.
    assert!(stats.flushes.load(Relaxed) > 0, "flush");
    assert!(stats.underruns.load(Relaxed) > 0, "underrun");
    assert!(stats.capture_overflows.load(Relaxed) > 0, "overflow");
    assert!(stats.frames_played.load(Relaxed) > 0, "playing");
    assert!(tapped > 0, "the tap delivered reference audio");
    assert!(
        tap_reader.clock().dropped_frames.load(Relaxed) > 0,
        "the tap ring overflowed"
    );
    assert!(
        tap_reader.clock().offset().is_some(),
        "the input callback published the pairing"
    );
    assert!(
        stats.nonfinite_samples.load(Relaxed) > 0,
        "non-finite input"
    );
    assert_eq!(violation_count(), 0, "a callback allocated");
}

#[test]
fn the_device_error_handler_never_allocates() {
    reset_violation_count();
    let stats = Arc::new(SharedStats::default());
    let mut handler = duplex_engine::cpal_device::device_error_handler(Arc::clone(&stats));
    let errors: Vec<cpal::Error> = (0..1_000).map(|_| cpal::ErrorKind::Xrun.into()).collect();
    for err in errors {
        assert_no_alloc(|| handler(err));
    }
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(stats.device_error_callbacks.load(Relaxed), 1_000);
    assert_eq!(
        stats.device_errors.load(Relaxed),
        1,
        "one burst is one episode"
    );
    assert_eq!(violation_count(), 0, "the error handler allocated");
}

#[test]
fn the_stream_wrappers_never_allocate() {
    // What cpal's device threads run around the callbacks: the frame clocks and the error
    // handler of a stream (below its storm threshold, where it would start to sleep).
    use duplex_engine::cpal_stream::{error_handler, CallbackSlots, STORM_ERRORS};
    use duplex_engine::device_health::{DeviceHealth, FrameClock};
    reset_violation_count();
    let stats = Arc::new(SharedStats::default());
    let health = Arc::new(DeviceHealth::default());
    let slots = Arc::new(CallbackSlots::new(None, None, false));
    slots.set_generation(1);
    let mut handler = error_handler(Arc::clone(&stats), Arc::clone(&health), slots, false, 1);
    let errors: Vec<cpal::Error> = (0..STORM_ERRORS)
        .map(|i| {
            if i % 2 == 0 {
                cpal::ErrorKind::Xrun.into()
            } else {
                cpal::ErrorKind::DeviceNotAvailable.into()
            }
        })
        .collect();
    let mut out_clock = FrameClock::new(48_000, 960);
    let mut in_clock = FrameClock::new(48_000, 960);
    for (k, err) in errors.into_iter().enumerate() {
        let now = k as u64 * 10_000_000 + if k % 9 == 0 { 50_000_000 } else { 0 };
        assert_no_alloc(|| {
            handler(err);
            out_clock.output(now, Some(480.0), 480, &health.output);
            out_clock.output(now + 1, None, 480, &health.output);
            in_clock.input(now, Some(480.0), 480, &health.input);
            in_clock.input(now + 1, None, 480, &health.input);
        });
    }
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(
        health.output.error_callbacks.load(Relaxed),
        u64::from(STORM_ERRORS)
    );
    assert!(health.output.backend_xruns.load(Relaxed) > 0);
    assert!(health.output.not_available.load(Relaxed));
    assert!(
        health.output.gaps.load(Relaxed) > 0,
        "late callbacks were not counted"
    );
    assert_eq!(violation_count(), 0, "a stream wrapper allocated");
}

#[test]
fn the_checker_does_catch_an_allocation() {
    // Guards against a silently disabled checker (e.g. a release build).
    reset_violation_count();
    assert_no_alloc(|| {
        let v: Vec<u8> = Vec::with_capacity(64);
        std::hint::black_box(v);
    });
    assert!(violation_count() > 0);
    reset_violation_count();
}
