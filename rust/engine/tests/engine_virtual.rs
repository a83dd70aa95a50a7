//! The whole engine on the virtual device: WAV in → 16 kHz chunks, model audio → recording,
//! interrupt, and the echo path.

mod common;

use std::time::Duration;

use common::*;
use duplex_engine::{
    Backend, Engine, EngineConfig, EngineError, VirtualConfig, VirtualInput, VirtualOutput,
};

fn engine(v: VirtualConfig) -> Engine {
    Engine::new(EngineConfig {
        backend: Backend::Virtual(v),
        prebuffer_ms: 100,
        ..EngineConfig::default()
    })
    .unwrap()
}

#[test]
fn wav_input_comes_out_as_16k_chunks_with_the_same_content() {
    let dir = std::env::temp_dir().join(format!("duplex-engine-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("in.wav");
    let input = sine_f32(44_100, 440.0, 0.5, 44_100);
    // A stereo 44.1 kHz file with the same sine on both channels.
    let stereo: Vec<f32> = input.iter().flat_map(|&s| [s, s]).collect();
    duplex_engine::wav::write_wav_i16(&path, &stereo, 44_100, 2).unwrap();

    let e = engine(VirtualConfig {
        input: VirtualInput::Wav(path),
        speed: 0.0,
        sample_rate: 48_000,
        channels: 2,
        ..VirtualConfig::default()
    });
    e.start().unwrap();
    let mut got = Vec::new();
    while got.len() < 16_000 {
        let chunk = e
            .read(Some(Duration::from_secs(5)))
            .unwrap()
            .expect("a chunk");
        assert_eq!(chunk.len(), 320);
        got.extend(chunk);
    }
    e.stop().unwrap();
    let out: Vec<f32> = got.iter().map(|&s| f32::from(s) / 32768.0).collect();
    // 1 s of 440 Hz: frequency and level survive two resamplings and a stereo downmix.
    let f = zero_crossing_freq(&out[800..15_000], 16_000);
    assert!((f - 440.0).abs() < 2.0, "{f}");
    assert!((rms(&out[800..15_000]) - 0.3536).abs() < 0.01);
    let snr = sine_snr_db(&out[800..15_000], 16_000, 440.0);
    assert!(snr > 60.0, "SNR {snr} (16-bit WAV in, 16-bit chunks out)");
    let stats = e.stats();
    assert_eq!(stats.capture_overflows, 0, "fast mode waits for the reader");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn played_audio_lands_in_the_recording_at_the_device_rate() {
    let e = engine(VirtualConfig {
        sample_rate: 44_100,
        speed: 4.0,
        ..VirtualConfig::default()
    });
    e.start().unwrap();
    e.play(&sine_i16(24_000, 500.0, 0.5, 12_000), None).unwrap();
    e.end_turn(None).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    e.stop().unwrap();
    let (rec, channels) = e.recording();
    assert_eq!(channels, 1);
    let start = rec.iter().position(|s| s.abs() > 1e-4).unwrap();
    let end = rec.iter().rposition(|s| s.abs() > 1e-4).unwrap();
    // 0.5 s at 44.1 kHz.
    assert!(
        ((end - start) as i64 - 22_050).abs() < 60,
        "{}",
        end - start
    );
    let f = zero_crossing_freq(&rec[start + 100..end - 100], 44_100);
    assert!((f - 500.0).abs() < 2.0, "{f}");
    assert_eq!(e.stats().underruns, 0);
}

#[test]
fn interrupt_flushes_and_the_next_turn_plays() {
    let e = engine(VirtualConfig::default());
    e.start().unwrap();
    e.play(&sine_i16(24_000, 440.0, 0.5, 48_000), None).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let report = e.interrupt().unwrap();
    assert!(
        report.heard_ms() > 100.0 && report.heard_ms() < 500.0,
        "{report:?}"
    );
    assert_eq!(report.received_frames, 48_000);
    std::thread::sleep(Duration::from_millis(100));
    e.play(&sine_i16(24_000, 1000.0, 0.5, 4_800), None).unwrap();
    e.end_turn(None).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    e.stop().unwrap();
    let stats = e.stats();
    assert_eq!(stats.flushes, 1);
    // After stop(), stats keep the last run's rates, so the milliseconds stay right.
    assert_eq!(stats.output_rate_hz, 48_000);
    assert!(
        stats.flushed_ms > 1_000.0 && stats.flushed_ms < 2_000.0,
        "{}",
        stats.flushed_ms
    );
    let (rec, _) = e.recording();
    let end = rec.iter().rposition(|s| s.abs() > 1e-4).unwrap();
    let f = zero_crossing_freq(&rec[end - 9_000..end - 100], 48_000);
    assert!((f - 1000.0).abs() < 5.0, "next turn at {f} Hz");
}

#[test]
fn loopback_echoes_the_output_into_the_input_after_the_delay() {
    let e = engine(VirtualConfig {
        loopback_delay_ms: Some(50.0),
        loopback_gain: 0.5,
        speed: 2.0,
        ..VirtualConfig::default()
    });
    e.start().unwrap();
    e.clear_capture().unwrap();
    e.play(&sine_i16(24_000, 800.0, 0.5, 12_000), None).unwrap();
    e.end_turn(None).unwrap();
    let mut got = Vec::new();
    while got.len() < 16_000 {
        got.extend(e.read(Some(Duration::from_secs(5))).unwrap().unwrap());
    }
    e.stop().unwrap();
    let out: Vec<f32> = got.iter().map(|&s| f32::from(s) / 32768.0).collect();
    let loud: Vec<&f32> = out.iter().filter(|s| s.abs() > 0.05).collect();
    assert!(!loud.is_empty(), "the echo reached the input");
    let peak = out.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    assert!((peak - 0.25).abs() < 0.02, "echo at half gain: {peak}");
}

#[test]
fn calls_on_a_stopped_engine_say_what_to_do() {
    let e = engine(VirtualConfig::default());
    let err = e.play(&[0; 10], None).unwrap_err();
    assert!(matches!(err, EngineError::Closed(_)));
    assert!(err.to_string().contains("start()"), "{err}");
    e.close().unwrap();
    assert!(e.start().unwrap_err().to_string().contains("closed"));
}

#[test]
fn a_bad_wav_is_reported_at_construction() {
    let err = Engine::new(EngineConfig {
        backend: Backend::Virtual(VirtualConfig {
            input: VirtualInput::Wav("/nonexistent/file.wav".into()),
            ..VirtualConfig::default()
        }),
        ..EngineConfig::default()
    })
    .unwrap_err();
    assert!(matches!(err, EngineError::Wav(_)));
    assert!(err.to_string().contains("/nonexistent/file.wav"));
}

#[test]
fn output_wav_is_written_at_the_device_rate_and_channels() {
    let path = std::env::temp_dir().join(format!("duplex-out-{}.wav", std::process::id()));
    let e = engine(VirtualConfig {
        output: VirtualOutput::Wav(path.clone()),
        channels: 2,
        sample_rate: 32_000,
        speed: 4.0,
        ..VirtualConfig::default()
    });
    e.start().unwrap();
    e.play(&sine_i16(24_000, 440.0, 0.5, 2_400), None).unwrap();
    e.end_turn(None).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    e.stop().unwrap();
    let reader = hound::WavReader::open(&path).unwrap();
    assert_eq!(reader.spec().sample_rate, 32_000);
    assert_eq!(reader.spec().channels, 2);
    let samples: Vec<i16> = reader.into_samples::<i16>().map(Result::unwrap).collect();
    let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!((16_000..=16_500).contains(&peak), "{peak}");
    std::fs::remove_file(&path).ok();
}

#[test]
fn fast_mode_loses_no_finite_input_even_if_the_first_read_is_late() {
    let e = engine(VirtualConfig {
        input: VirtualInput::Samples {
            samples: sine_f32(16_000, 440.0, 0.5, 16_000 * 4),
            rate_hz: 16_000,
        },
        speed: 0.0,
        ..VirtualConfig::default()
    });
    e.start().unwrap();
    // Without backpressure, 4 s of input would overflow the 2 s capture ring by now.
    std::thread::sleep(Duration::from_millis(300));
    let mut got = Vec::new();
    while got.len() < 16_000 * 3 {
        got.extend(e.read(Some(Duration::from_secs(5))).unwrap().unwrap());
    }
    e.stop().unwrap();
    assert_eq!(e.stats().capture_overflows, 0);
    let out: Vec<f32> = got.iter().map(|&s| f32::from(s) / 32768.0).collect();
    assert!(max_residual_after_sine_fit(&out[400..47_000], 16_000, 440.0) < 2e-3);
}
