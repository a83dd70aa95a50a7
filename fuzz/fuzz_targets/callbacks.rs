//! Fuzzes the playback and capture paths through the real callback bodies, as the device
//! threads run them: the input bytes choose a device (rate, channels, ring, prebuffer,
//! fade) and an interleaving of play, end_turn, interrupt, output callbacks of any size and
//! sample format, idle stretches (underruns), input callbacks of any values (NaN, ±inf,
//! huge, raw bit patterns) and reads.
//!
//! Asserted after every step: no panic; `frames_pushed = frames_played + flushed + buffered`
//! exactly; a refused `play()`/`end_turn()` changes nothing queued; output finite and in
//! range; the non-finite count equals a model's; every chunk read is whole. At the end the
//! turn is ended and rendered out within a bounded number of periods (nothing stuck).
#![no_main]

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use duplex_engine::callback::{InputCallback, OutputCallback};
use duplex_engine::capture::{capture_channel, CaptureReader};
use duplex_engine::playback::{playback_channel, PlaybackProducer};
use duplex_engine::stats::SharedStats;
use duplex_engine::EngineError;
use libfuzzer_sys::fuzz_target;

/// Reads the fuzzer's bytes as small numbers (zeros once they run out).
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
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

const RATES: [u32; 8] = [8_000, 11_025, 16_000, 22_050, 24_000, 44_100, 48_000, 96_000];

struct Session {
    producer: PlaybackProducer,
    out_cb: OutputCallback,
    in_cb: InputCallback,
    reader: CaptureReader,
    stats: Arc<SharedStats>,
    channels: usize,
    nonfinite_expected: u64,
    chunks: u64,
    rendered_frames: u64,
}

impl Session {
    fn accounting(&self) -> (u64, u64, u64, u64) {
        (
            self.stats.frames_pushed.load(Relaxed),
            self.stats.frames_played.load(Relaxed),
            self.stats.flushed_frames.load(Relaxed),
            self.producer.shared().buffered_frames(),
        )
    }

    fn check(&self) {
        let (pushed, played, flushed, buffered) = self.accounting();
        assert_eq!(
            pushed,
            played + flushed + buffered,
            "pushed {pushed} != played {played} + flushed {flushed} + buffered {buffered}"
        );
        assert_eq!(self.stats.frames_rendered.load(Relaxed), self.rendered_frames);
        assert!(played <= self.rendered_frames);
        assert_eq!(self.stats.nonfinite_samples.load(Relaxed), self.nonfinite_expected);
        assert_eq!(self.stats.chunks_read.load(Relaxed), self.chunks);
    }

    fn render(&mut self, frames: usize, format: u8) {
        let n = frames * self.channels;
        let ok = match format % 3 {
            0 => {
                let mut buf = vec![0.0f32; n];
                self.out_cb.process(&mut buf);
                buf.iter().all(|s| s.is_finite() && s.abs() <= 2.0)
            }
            1 => {
                let mut buf = vec![0i16; n];
                self.out_cb.process(&mut buf);
                true
            }
            _ => {
                let mut buf = vec![0i32; n];
                self.out_cb.process(&mut buf);
                true
            }
        };
        assert!(ok, "output not finite or out of range");
        self.rendered_frames += frames as u64;
    }

    fn capture(&mut self, frames: usize, kind: u8, bits: u32) {
        let n = frames * self.channels;
        let data: Vec<f32> = (0..n)
            .map(|i| match kind % 6 {
                0 => 0.5 * (i as f32 * 0.01).sin(),
                1 => f32::NAN,
                2 => if i % 2 == 0 { f32::INFINITY } else { f32::NEG_INFINITY },
                3 => f32::MAX,
                // Any bit pattern at all (NaN payloads, subnormals, huge values).
                4 => f32::from_bits(bits.wrapping_mul(i as u32 + 1)),
                _ => if i % (bits as usize % 50 + 1) == 0 { f32::NAN } else { 0.25 },
            })
            .collect();
        let scale = 1.0 / self.channels as f32;
        self.nonfinite_expected += data
            .chunks_exact(self.channels)
            .filter(|f| !(f.iter().sum::<f32>() * scale).is_finite())
            .count() as u64;
        self.in_cb.process(&data);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let rate = RATES[usize::from(b.u8()) % RATES.len()];
    let channels = usize::from(b.u8() % 3) + 1;
    let ms = |m: u32| (m as usize * rate as usize / 1000).max(1);
    // The engine's smallest ring is 100 ms (see prop_callbacks.rs); up to 2 s.
    let ring_frames = ms(100 + u32::from(b.u16()) % 1_901);
    let prebuffer_frames = ms(u32::from(b.u16()) % 401).min(ring_frames);
    let fade_frames = ms(u32::from(b.u8()) % 20 + 1);
    let stats = Arc::new(SharedStats::default());
    let (producer, renderer) =
        playback_channel(rate, ring_frames, prebuffer_frames, fade_frames, Arc::clone(&stats))
            .expect("valid playback settings");
    let out_cb = OutputCallback::new(renderer, channels as u16, rate, Arc::clone(&stats));
    let (writer, reader) = capture_channel(rate, rate as usize / 5, 20, Arc::clone(&stats))
        .expect("valid capture settings");
    let in_cb = InputCallback::new(writer, channels as u16, rate, Arc::clone(&stats));
    let mut s = Session {
        producer,
        out_cb,
        in_cb,
        reader,
        stats,
        channels,
        nonfinite_expected: 0,
        chunks: 0,
        rendered_frames: 0,
    };

    let mut steps = 0;
    while !b.is_empty() && steps < 200 {
        steps += 1;
        match b.u8() % 10 {
            0 | 1 => {
                // Play up to 0.4 s of 24 kHz audio, or now and then 3 s (never fits a 2 s ring).
                let frames = if b.u8() == 255 { 72_000 } else { usize::from(b.u16()) % 9_601 };
                let amplitude = b.u16() as i16;
                let pcm: Vec<i16> = (0..frames)
                    .map(|i| if i % 48 < 24 { amplitude } else { amplitude.saturating_neg() })
                    .collect();
                let before = s.accounting();
                match s.producer.try_play(&pcm) {
                    Ok(true) => {}
                    Ok(false) | Err(EngineError::ChunkTooLarge(_)) => {
                        assert_eq!(s.accounting(), before, "a refused play() changed the queue")
                    }
                    Err(e) => panic!("play: unexpected {e:?}"),
                }
            }
            2 => {
                let before = s.accounting();
                if !s.producer.try_end_turn().expect("end_turn") {
                    assert_eq!(s.accounting(), before, "a refused end_turn() changed the queue");
                }
            }
            3 => {
                let r = s.producer.interrupt();
                assert!(r.heard_frames <= r.received_frames, "{r:?}");
                assert!(r.discarded_ms.is_finite() && r.discarded_ms >= 0.0, "{r:?}");
            }
            4 | 5 => {
                let frames = usize::from(b.u16()) % 2_000 + 1;
                let format = b.u8();
                s.render(frames, format);
            }
            6 => {
                for _ in 0..usize::from(b.u8() % 50) + 1 {
                    s.render(480, 0);
                }
            }
            7 | 8 => {
                let frames = usize::from(b.u16()) % 2_000 + 1;
                let kind = b.u8();
                let bits = b.u32();
                s.capture(frames, kind, bits);
            }
            _ => {
                while let Some(chunk) = s.reader.try_read() {
                    assert_eq!(chunk.len(), s.reader.chunk_frames());
                    s.chunks += 1;
                }
            }
        }
        s.check();
    }

    // Nothing stays stuck: the turn ends and plays out within a bounded number of periods.
    let mut periods = 0;
    while !s.producer.try_end_turn().expect("end_turn") {
        s.render(480, 0);
        periods += 1;
        assert!(periods < 100_000, "end_turn() never found room");
    }
    while s.producer.shared().buffered_frames() > 0 {
        s.render(480, 0);
        periods += 1;
        assert!(periods < 100_000, "a complete turn never played out");
    }
    s.check();
});
