//! Property-based tests of the playback and capture paths through the real callback bodies:
//! random devices (rate, channels, sample format, ring size, prebuffer, fade) and random
//! interleavings of play, end_turn, interrupt, render periods of any size, idle stretches
//! (underruns), captures of any values (NaN, ±inf, huge) and reads.
//!
//! After every step: nothing panicked, `frames_pushed = frames_played + flushed_frames +
//! buffered` exactly, output is finite, and the non-finite capture count matches a model.
//! A refused `play()` (ring full, or a chunk that can never fit) must leave everything
//! queued intact: the same session without the refused calls renders bit-identical audio.
//!
//! Cases: `PROPTEST_CASES` (default 64 here, a few seconds); e.g.
//! `PROPTEST_CASES=20000 cargo test -p duplex-engine --release --test prop_callbacks`.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use duplex_engine::callback::{InputCallback, OutputCallback};
use duplex_engine::capture::{capture_channel, CaptureReader};
use duplex_engine::playback::{playback_channel, PlaybackProducer};
use duplex_engine::stats::SharedStats;
use duplex_engine::EngineError;
use proptest::prelude::*;
use proptest::test_runner::Config;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

fn config() -> Config {
    Config {
        cases: cases(),
        // A failure prints its minimal case; no regression files in the source tree.
        failure_persistence: None,
        ..Config::default()
    }
}

/// A simulated device and engine settings.
#[derive(Debug, Clone)]
struct Device {
    rate: u32,
    channels: u16,
    ring_frames: usize,
    prebuffer_frames: usize,
    fade_frames: usize,
}

fn device() -> impl Strategy<Value = Device> {
    (
        prop::sample::select(vec![
            8_000u32, 16_000, 22_050, 24_000, 44_100, 48_000, 96_000,
        ]),
        1u16..=3,
        // Ring, ms: from the engine's minimum (100: below it the resampler's end-of-turn tail
        // can be larger than the whole ring) to 2 s (a 3 s chunk never fits).
        100u32..=2_000,
        0u32..=400, // prebuffer, ms
        1u32..=20,  // fade, ms
    )
        .prop_map(|(rate, channels, ring_ms, pre_ms, fade_ms)| {
            let ms = |m: u32| (m as usize * rate as usize / 1000).max(1);
            Device {
                rate,
                channels,
                ring_frames: ms(ring_ms),
                prebuffer_frames: ms(pre_ms).min(ms(ring_ms)),
                fade_frames: ms(fade_ms),
            }
        })
}

/// What a capture period contains.
#[derive(Debug, Clone, Copy)]
enum Fill {
    Sine,
    Nan,
    Inf,
    Huge,
    /// Every `n`th sample non-finite.
    Sprinkled(u8),
}

#[derive(Debug, Clone)]
enum Op {
    /// `frames` of 24 kHz model audio at `amplitude`.
    Play {
        frames: usize,
        amplitude: i16,
    },
    EndTurn,
    Interrupt,
    /// One output callback of `frames` device frames in format `format` (0 f32, 1 i16, 2 i32).
    Render {
        frames: usize,
        format: u8,
    },
    /// Many periods with nothing played: underruns and idle silence.
    Idle {
        periods: usize,
    },
    /// One input callback of `frames` device frames.
    Capture {
        frames: usize,
        fill: Fill,
    },
    /// Drain every complete capture chunk.
    Read,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..=9_600, any::<i16>()).prop_map(|(frames, amplitude)| Op::Play { frames, amplitude }),
        // Now and then a chunk far larger than any ring: always refused.
        1 => Just(Op::Play { frames: 72_000, amplitude: 1000 }),
        2 => Just(Op::EndTurn),
        2 => Just(Op::Interrupt),
        6 => (1usize..=2_000, 0u8..3).prop_map(|(frames, format)| Op::Render { frames, format }),
        1 => (1usize..=50).prop_map(|periods| Op::Idle { periods }),
        3 => (1usize..=2_000, prop_oneof![
            Just(Fill::Sine), Just(Fill::Nan), Just(Fill::Inf), Just(Fill::Huge),
            (1u8..=50).prop_map(Fill::Sprinkled),
        ]).prop_map(|(frames, fill)| Op::Capture { frames, fill }),
        2 => Just(Op::Read),
    ]
}

/// What a step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    /// Refused for now (ring too full): nothing queued changed, and the renderer stops
    /// waiting for the prebuffer so room appears.
    NoRoomYet,
    /// Refused for good (`ChunkTooLarge`): a pure no-op.
    NeverFits,
}

struct Session {
    producer: PlaybackProducer,
    out_cb: OutputCallback,
    in_cb: InputCallback,
    reader: CaptureReader,
    stats: Arc<SharedStats>,
    channels: usize,
    rendered: Vec<f32>,
    /// The model's count of non-finite mono samples handed to the input callback.
    nonfinite_expected: u64,
    chunks: u64,
    rendered_frames: u64,
}

impl Session {
    fn new(d: &Device) -> Self {
        let stats = Arc::new(SharedStats::default());
        let (producer, renderer) = playback_channel(
            d.rate,
            d.ring_frames,
            d.prebuffer_frames,
            d.fade_frames,
            Arc::clone(&stats),
        )
        .unwrap();
        let out_cb = OutputCallback::new(renderer, d.channels, d.rate, Arc::clone(&stats));
        let (writer, reader) =
            capture_channel(d.rate, d.rate as usize / 5, 20, Arc::clone(&stats)).unwrap();
        let in_cb = InputCallback::new(writer, d.channels, d.rate, Arc::clone(&stats));
        Self {
            producer,
            out_cb,
            in_cb,
            reader,
            stats,
            channels: usize::from(d.channels),
            rendered: Vec::new(),
            nonfinite_expected: 0,
            chunks: 0,
            rendered_frames: 0,
        }
    }

    fn render(&mut self, frames: usize, format: u8) {
        let n = frames * self.channels;
        let mono: Vec<f32> = match format {
            0 => {
                let mut buf = vec![0.0f32; n];
                self.out_cb.process(&mut buf);
                buf
            }
            1 => {
                let mut buf = vec![0i16; n];
                self.out_cb.process(&mut buf);
                buf.iter().map(|&s| f32::from(s) / 32768.0).collect()
            }
            _ => {
                let mut buf = vec![0i32; n];
                self.out_cb.process(&mut buf);
                buf.iter().map(|&s| s as f32 / 2_147_483_648.0).collect()
            }
        };
        self.rendered_frames += frames as u64;
        // Keep one channel; every channel carries the same mono signal.
        self.rendered
            .extend(mono.iter().step_by(self.channels).copied());
    }

    fn capture(&mut self, frames: usize, fill: Fill) {
        let n = frames * self.channels;
        let data: Vec<f32> = (0..n)
            .map(|i| match fill {
                Fill::Sine => 0.5 * (i as f32 * 0.01).sin(),
                Fill::Nan => f32::NAN,
                Fill::Inf => {
                    if i % 2 == 0 {
                        f32::INFINITY
                    } else {
                        f32::NEG_INFINITY
                    }
                }
                Fill::Huge => f32::MAX,
                Fill::Sprinkled(k) => {
                    if i % usize::from(k) == 0 {
                        f32::NAN
                    } else {
                        0.25
                    }
                }
            })
            .collect();
        // The model: the mono sample of a frame is non-finite when the channel average is.
        let scale = 1.0 / self.channels as f32;
        self.nonfinite_expected += data
            .chunks_exact(self.channels)
            .filter(|f| !(f.iter().sum::<f32>() * scale).is_finite())
            .count() as u64;
        self.in_cb.process(&data);
    }

    /// Runs one op; says whether it was refused (then nothing queued has changed).
    fn step(&mut self, op: &Op) -> Outcome {
        match op {
            Op::Play { frames, amplitude } => {
                let pcm: Vec<i16> = (0..*frames)
                    .map(|i| {
                        if i % 48 < 24 {
                            *amplitude
                        } else {
                            amplitude.saturating_neg()
                        }
                    })
                    .collect();
                let before = self.accounting();
                let outcome = match self.producer.try_play(&pcm) {
                    Ok(true) => Outcome::Done,
                    Ok(false) => Outcome::NoRoomYet,
                    Err(EngineError::ChunkTooLarge(_)) => Outcome::NeverFits,
                    Err(e) => panic!("unexpected error {e:?}"),
                };
                if outcome != Outcome::Done {
                    assert_eq!(
                        self.accounting(),
                        before,
                        "a refused play() changed the queue"
                    );
                }
                outcome
            }
            Op::EndTurn => {
                let before = self.accounting();
                if self.producer.try_end_turn().unwrap() {
                    Outcome::Done
                } else {
                    assert_eq!(
                        self.accounting(),
                        before,
                        "a refused end_turn() changed the queue"
                    );
                    Outcome::NoRoomYet
                }
            }
            Op::Interrupt => {
                let r = self.producer.interrupt();
                assert!(r.heard_frames <= r.received_frames, "{r:?}");
                assert!(r.discarded_ms >= 0.0 && r.discarded_ms.is_finite(), "{r:?}");
                Outcome::Done
            }
            Op::Render { frames, format } => {
                self.render(*frames, *format);
                Outcome::Done
            }
            Op::Idle { periods } => {
                for _ in 0..*periods {
                    self.render(480, 0);
                }
                Outcome::Done
            }
            Op::Capture { frames, fill } => {
                self.capture(*frames, *fill);
                Outcome::Done
            }
            Op::Read => {
                while let Some(chunk) = self.reader.try_read() {
                    assert_eq!(chunk.len(), self.reader.chunk_frames());
                    self.chunks += 1;
                }
                Outcome::Done
            }
        }
    }

    /// (pushed, played, flushed, buffered) in device frames.
    fn accounting(&self) -> (u64, u64, u64, u64) {
        (
            self.stats.frames_pushed.load(Relaxed),
            self.stats.frames_played.load(Relaxed),
            self.stats.flushed_frames.load(Relaxed),
            self.producer.shared().buffered_frames(),
        )
    }

    /// Ends the turn and renders until everything is played: a complete turn always plays
    /// out, whatever the ring and prebuffer sizes. Returns the periods rendered.
    fn drain(&mut self) -> usize {
        let mut periods = 0;
        while self.step(&Op::EndTurn) != Outcome::Done {
            self.step(&Op::Idle { periods: 1 });
            periods += 1;
            assert!(periods < 100_000, "end_turn() never found room");
        }
        while self.producer.shared().buffered_frames() > 0 {
            self.step(&Op::Idle { periods: 1 });
            periods += 1;
            assert!(periods < 100_000, "a complete turn never played out");
        }
        periods
    }

    fn check_invariants(&self) {
        let (pushed, played, flushed, buffered) = self.accounting();
        assert_eq!(
            pushed,
            played + flushed + buffered,
            "pushed {pushed} != played {played} + flushed {flushed} + buffered {buffered}"
        );
        assert_eq!(
            self.stats.frames_rendered.load(Relaxed),
            self.rendered_frames
        );
        assert!(played <= self.rendered_frames);
        assert_eq!(
            self.stats.nonfinite_samples.load(Relaxed),
            self.nonfinite_expected
        );
        assert_eq!(self.stats.chunks_read.load(Relaxed), self.chunks);
        assert!(
            self.rendered
                .iter()
                .all(|s| s.is_finite() && s.abs() <= 2.0),
            "output out of range"
        );
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_interleaving_keeps_every_frame_accounted(
        d in device(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let mut s = Session::new(&d);
        let mut never_fit = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            if s.step(op) == Outcome::NeverFits {
                never_fit.push(i);
            }
            s.check_invariants();
        }
        // Drain: everything pushed ends up played or flushed, nothing stays stuck.
        s.drain();
        s.check_invariants();
        prop_assert_eq!(s.producer.shared().buffered_frames(), 0);

        // The same session without the calls refused for good renders bit-identical audio.
        if !never_fit.is_empty() {
            let mut t = Session::new(&d);
            for (i, op) in ops.iter().enumerate() {
                if never_fit.binary_search(&i).is_err() {
                    t.step(op);
                }
            }
            t.drain();
            prop_assert_eq!(s.rendered.len(), t.rendered.len());
            let first_diff = s.rendered.iter().zip(&t.rendered).position(|(a, b)| a.to_bits() != b.to_bits());
            prop_assert!(first_diff.is_none(), "refused calls changed the audio at frame {:?}", first_diff);
            prop_assert_eq!(s.accounting(), t.accounting());
        }
    }

    #[test]
    fn two_interrupts_in_a_row_report_the_audio_once(
        d in device(),
        chunks in prop::collection::vec(1usize..=4_800, 1..10),
        render_periods in 0usize..50,
    ) {
        let mut s = Session::new(&d);
        let mut received = 0;
        for &frames in &chunks {
            if s.step(&Op::Play { frames, amplitude: 8_000 }) != Outcome::Done {
                break;
            }
            received += frames;
        }
        for _ in 0..render_periods {
            s.render(480, 0);
        }
        let first = s.producer.interrupt();
        let second = s.producer.interrupt();
        prop_assert_eq!(second.discarded_ms, 0.0);
        prop_assert_eq!(second.received_frames, 0);
        prop_assert!(first.received_frames as usize == received);
        // What the first one reports discarded is what was not yet played.
        let (pushed, played, _, _) = s.accounting();
        let expect_ms = (pushed - played) as f64 * 1000.0 / f64::from(d.rate);
        prop_assert!((first.discarded_ms - expect_ms).abs() < 1e-6,
            "discarded {} ms, expected {} ms", first.discarded_ms, expect_ms);
        s.check_invariants();
    }
}
