//! Property-based tests of the engine's public API on the virtual device: random settings
//! (valid or not) and random sequences of start, stop, play, end_turn, interrupt, read,
//! clear_capture and stats, with small timeouts, while the device thread runs.
//!
//! Asserted: nothing panics; bad settings are refused by `Engine::new` (never at start, never
//! a panic); no call outlives its timeout by more than a bound; after `stop()` every pushed
//! frame is played or flushed, exactly; a refused `play()` leaves what was queued intact.
//!
//! Cases: `PROPTEST_CASES` (default 32 here, each a few hundred ms of device time).

use std::time::{Duration, Instant};

use duplex_engine::{
    Backend, Engine, EngineConfig, EngineError, VirtualConfig, VirtualInput, VirtualOutput,
};
use proptest::prelude::*;
use proptest::test_runner::Config;

fn config() -> Config {
    Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(32),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Any f64 a user might pass: ordinary values, edges, and non-finite ones.
fn wild_f64(ordinary: std::ops::RangeInclusive<f64>) -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => ordinary,
        1 => prop::sample::select(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0, 1e9, 1e-9, 0.0]),
    ]
}

fn virtual_config() -> impl Strategy<Value = VirtualConfig> {
    (
        prop::sample::select(vec![7u32, 8_000, 16_000, 44_100, 48_000, 96_000, 400_000]),
        prop_oneof![8 => 1u16..=4, 1 => Just(0u16), 1 => Just(64u16)],
        prop_oneof![8 => 64u32..=2048, 1 => Just(0u32), 1 => Just(10_000u32)],
        prop_oneof![4 => Just(None), 2 => wild_f64(0.0..=200.0).prop_map(Some)],
        wild_f64(-2.0..=2.0),
        prop_oneof![3 => Just(0.0), 3 => wild_f64(5.0..=100.0)],
        wild_f64(-500.0..=500.0),
        (0u32..=20, wild_f64(0.0..=30.0)),
        prop_oneof![
            Just(VirtualInput::Silence),
            (wild_f64(50.0..=4_000.0), wild_f64(0.0..=1.0)).prop_map(|(f, a)| VirtualInput::Tone {
                freq_hz: f as f32,
                amplitude: a as f32
            }),
            (
                prop::collection::vec(
                    prop_oneof![8 => -1.0f32..=1.0, 1 => Just(f32::NAN), 1 => Just(f32::INFINITY)],
                    0..5_000
                ),
                prop::sample::select(vec![0u32, 8_000, 22_050, 48_000])
            )
                .prop_map(|(samples, rate_hz)| VirtualInput::Samples { samples, rate_hz }),
        ],
    )
        .prop_map(
            |(
                sample_rate,
                channels,
                period_frames,
                delay,
                gain,
                speed,
                skew,
                (every, stall),
                input,
            )| {
                VirtualConfig {
                    sample_rate,
                    channels,
                    period_frames,
                    input,
                    input_loop: every % 2 == 0,
                    loopback_delay_ms: delay,
                    loopback_gain: gain as f32,
                    output: VirtualOutput::Memory,
                    speed,
                    clock_skew_ppm: skew,
                    stall_every_periods: every,
                    stall_ms: stall,
                    // No forced xruns: tests/echo_xrun.rs covers them.
                    ..VirtualConfig::default()
                }
            },
        )
}

#[derive(Debug, Clone)]
enum Call {
    Start,
    Stop,
    Play(usize),
    EndTurn,
    Interrupt,
    Read,
    ClearCapture,
    Stats,
    Sleep(u64),
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        1 => Just(Call::Start),
        1 => Just(Call::Stop),
        // 0.5 s never fits the 300 ms ring (refused before any resampling), fits the 5 s one.
        4 => prop_oneof![0usize..=4_800, Just(12_000)].prop_map(Call::Play),
        2 => Just(Call::EndTurn),
        2 => Just(Call::Interrupt),
        3 => Just(Call::Read),
        1 => Just(Call::ClearCapture),
        1 => Just(Call::Stats),
        1 => (0u64..=30).prop_map(Call::Sleep),
    ]
}

/// Longest a call with a 20 ms timeout may take: a debug build resampling a chunk or a
/// full capture ring on a loaded 2-core machine, far below any hang.
const BOUND: Duration = Duration::from_secs(5);
const TIMEOUT: Option<Duration> = Some(Duration::from_millis(20));

fn timed<T>(what: &Call, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    assert!(t.elapsed() < BOUND, "{what:?} took {:?}", t.elapsed());
    r
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_settings_and_call_sequence_is_safe(
        v in virtual_config(),
        playback_ms in prop_oneof![Just(300u32), Just(5_000u32)],
        calls in prop::collection::vec(call(), 1..40),
    ) {
        let engine = match Engine::new(EngineConfig {
            backend: Backend::Virtual(v.clone()),
            playback_buffer_ms: playback_ms,
            prebuffer_ms: 100,
            ..EngineConfig::default()
        }) {
            Ok(e) => e,
            Err(EngineError::InvalidInput(msg)) | Err(EngineError::Wav(msg)) => {
                prop_assert!(!msg.is_empty());
                // Refused settings are refused before anything starts; the same check is
                // what validate() says.
                prop_assert!(v.validate().is_err() || v.prepare_input().is_err());
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(format!("unexpected {e:?}"))),
        };
        // Accepted settings always start.
        prop_assert!(v.validate().is_ok());
        timed(&Call::Start, || engine.start()).unwrap();
        let pcm: Vec<i16> = (0..12_000).map(|i| ((i % 64) as i16 - 32) * 300).collect();
        for c in &calls {
            match c {
                Call::Start => { timed(c, || engine.start()).unwrap(); }
                Call::Stop => { timed(c, || engine.stop()).unwrap(); }
                Call::Play(n) => {
                    let before = engine.stats().playback_buffered_frames;
                    match timed(c, || engine.play(&pcm[..*n], TIMEOUT)) {
                        Ok(()) | Err(EngineError::Closed(_)) => {}
                        Err(EngineError::ChunkTooLarge(_)) => {
                            // Refused for good: nothing queued changed (the device may have
                            // played some meanwhile, never added).
                            prop_assert!(engine.stats().playback_buffered_frames <= before);
                        }
                        Err(EngineError::PlaybackFull(_)) => {}
                        Err(e) => return Err(TestCaseError::fail(format!("play: {e:?}"))),
                    }
                }
                Call::EndTurn => match timed(c, || engine.end_turn(TIMEOUT)) {
                    Ok(()) | Err(EngineError::Closed(_)) | Err(EngineError::PlaybackFull(_)) => {}
                    Err(e) => return Err(TestCaseError::fail(format!("end_turn: {e:?}"))),
                },
                Call::Interrupt => match timed(c, || engine.interrupt()) {
                    Ok(r) => prop_assert!(r.heard_frames <= r.received_frames && r.discarded_ms >= 0.0),
                    Err(EngineError::Closed(_)) => {}
                    Err(e) => return Err(TestCaseError::fail(format!("interrupt: {e:?}"))),
                },
                Call::Read => match timed(c, || engine.read(TIMEOUT)) {
                    Ok(Some(chunk)) => prop_assert_eq!(chunk.len(), engine.chunk_frames()),
                    Ok(None) | Err(EngineError::Closed(_)) => {}
                    Err(e) => return Err(TestCaseError::fail(format!("read: {e:?}"))),
                },
                Call::ClearCapture => { let _ = timed(c, || engine.clear_capture()); }
                Call::Stats => { timed(c, || engine.stats()); }
                Call::Sleep(ms) => std::thread::sleep(Duration::from_millis(*ms)),
            }
        }
        timed(&Call::Stop, || engine.close()).unwrap();
        let s = engine.stats();
        prop_assert_eq!(s.playback_buffered_frames, 0);
        prop_assert_eq!(s.frames_pushed, s.frames_played + s.frames_flushed,
            "pushed {} played {} flushed {}", s.frames_pushed, s.frames_played, s.frames_flushed);
    }
}
