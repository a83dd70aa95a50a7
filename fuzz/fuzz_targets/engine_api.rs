//! Fuzzes the engine's public API on the virtual device while its device thread runs: the
//! input bytes choose the device (rate, channels, period, speed, stalls, echo path) and a
//! sequence of start, stop, play, end_turn, drain, interrupt, read, clear_capture and stats
//! with small timeouts.
//!
//! Asserted: no panic; settings are accepted or refused with `InvalidInput`, never later;
//! no call outlives its timeout by more than a generous bound; interrupt reports are
//! consistent; after `close()` every frame pushed was played or flushed, exactly.
#![no_main]

use std::time::{Duration, Instant};

use duplex_engine::{
    Backend, Engine, EngineConfig, EngineError, VirtualConfig, VirtualInput, VirtualOutput,
};
use libfuzzer_sys::fuzz_target;

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().map_or((0, &[][..]), |(f, r)| (*f, r));
        self.0 = rest;
        first
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Longest a call with a 10 ms timeout may take before it counts as hung: generous, because
/// the brief run in scripts/test.sh shares a loaded machine that has starved processes for
/// 3 s; a call that waits for its peer without a bound waits forever, far past this.
const BOUND: Duration = Duration::from_secs(30);
const TIMEOUT: Option<Duration> = Some(Duration::from_millis(10));

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    assert!(t.elapsed() < BOUND, "{what} took {:?}", t.elapsed());
    r
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let v = VirtualConfig {
        sample_rate: [8_000, 16_000, 44_100, 48_000, 96_000, 7][usize::from(b.u8()) % 6],
        channels: u16::from(b.u8() % 4),
        period_frames: [16, 64, 480, 1_024, 4_096, 0][usize::from(b.u8()) % 6],
        input: match b.u8() % 3 {
            0 => VirtualInput::Silence,
            1 => VirtualInput::Tone { freq_hz: 440.0, amplitude: f32::from(b.u8()) / 100.0 },
            _ => VirtualInput::Samples {
                samples: (0..usize::from(b.u16()) % 4_000)
                    .map(|i| if i % 97 == 0 { f32::NAN } else { (i as f32 * 0.05).sin() })
                    .collect(),
                rate_hz: [0, 16_000, 22_050, 48_000][usize::from(b.u8()) % 4],
            },
        },
        input_loop: b.u8() % 2 == 0,
        loopback_delay_ms: if b.u8() % 3 == 0 { Some(f64::from(b.u8())) } else { None },
        loopback_gain: f32::from(b.u8()) / 50.0 - 2.0,
        output: VirtualOutput::Memory,
        // As fast as possible, or 5x to 100x real time (the device thread runs meanwhile).
        speed: if b.u8() % 2 == 0 { 0.0 } else { f64::from(b.u8() % 96 + 5) },
        clock_skew_ppm: f64::from(b.u16() % 2_001) - 1_000.0,
        stall_every_periods: u32::from(b.u8() % 20),
        stall_ms: f64::from(b.u8() % 30),
        // Forced xruns below the engine; 0 and 101 lost periods are out of range on purpose.
        overrun_every_periods: u32::from(b.u8() % 16),
        underrun_every_periods: u32::from(b.u8() % 16),
        xrun_periods: u32::from(b.u8() % 102),
    };
    let playback_buffer_ms = if b.u8() % 2 == 0 { 300 } else { 5_000 };
    let engine = match Engine::new(EngineConfig {
        backend: Backend::Virtual(v.clone()),
        playback_buffer_ms,
        prebuffer_ms: u32::from(b.u8()),
        ..EngineConfig::default()
    }) {
        Ok(e) => e,
        Err(EngineError::InvalidInput(msg)) | Err(EngineError::Wav(msg)) => {
            assert!(!msg.is_empty());
            return;
        }
        Err(e) => panic!("Engine::new: unexpected {e:?}"),
    };
    timed("start", || engine.start()).expect("accepted settings start");
    let pcm: Vec<i16> = (0..12_000).map(|i| ((i % 64) as i16 - 32) * 300).collect();
    let mut steps = 0;
    while !b.is_empty() && steps < 40 {
        steps += 1;
        match b.u8() % 11 {
            0 => timed("start", || engine.start()).expect("start"),
            1 => timed("stop", || engine.stop()).expect("stop"),
            2 | 3 => {
                let n = if b.u8() == 255 { 12_000 } else { usize::from(b.u16()) % 4_801 };
                match timed("play", || engine.play(&pcm[..n], TIMEOUT)) {
                    Ok(())
                    | Err(EngineError::Closed(_))
                    | Err(EngineError::ChunkTooLarge(_))
                    | Err(EngineError::PlaybackFull(_)) => {}
                    Err(e) => panic!("play: unexpected {e:?}"),
                }
            }
            4 => match timed("end_turn", || engine.end_turn(TIMEOUT)) {
                Ok(()) | Err(EngineError::Closed(_)) | Err(EngineError::PlaybackFull(_)) => {}
                Err(e) => panic!("end_turn: unexpected {e:?}"),
            },
            5 => {
                let _ = timed("drain", || engine.drain(TIMEOUT));
            }
            6 => match timed("interrupt", || engine.interrupt()) {
                Ok(r) => assert!(r.heard_frames <= r.received_frames && r.discarded_ms >= 0.0),
                Err(EngineError::Closed(_)) => {}
                Err(e) => panic!("interrupt: unexpected {e:?}"),
            },
            7 | 8 => match timed("read", || engine.read(TIMEOUT)) {
                Ok(Some(chunk)) => assert_eq!(chunk.len(), engine.chunk_frames()),
                Ok(None) | Err(EngineError::Closed(_)) => {}
                Err(e) => panic!("read: unexpected {e:?}"),
            },
            9 => {
                let _ = timed("clear_capture", || engine.clear_capture());
            }
            _ => {
                let s = timed("stats", || engine.stats());
                assert!(s.frames_played <= s.frames_pushed);
            }
        }
    }
    timed("close", || engine.close()).expect("close");
    let s = engine.stats();
    assert_eq!(s.playback_buffered_frames, 0);
    assert_eq!(
        s.frames_pushed,
        s.frames_played + s.frames_flushed,
        "pushed {} played {} flushed {}",
        s.frames_pushed,
        s.frames_played,
        s.frames_flushed
    );
});
