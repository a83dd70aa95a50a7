//! # duplex-engine
//!
//! The real-time core of duplex: full-duplex audio for speech-to-speech models.
//!
//! * **Capture**: device input at any rate, channel count and sample format → mono `f32` →
//!   a wait-free SPSC ring → (caller's thread) streaming resampler → 16 kHz 16-bit chunks.
//! * **Playback**: 24 kHz 16-bit model audio → (caller's thread) streaming resampler →
//!   SPSC ring → device callback → any channel count and format, with a jitter buffer.
//! * **Flush**: [`Engine::interrupt`] is one atomic store; the output callback fades out and
//!   skips the ring at its next period. Audio queued after the interrupt is kept.
//!
//! The device callbacks ([`callback::OutputCallback::process`],
//! [`callback::InputCallback::process`]) never allocate, lock or block; they touch only
//! their end of a ring, atomics and scratch buffers made before the stream starts. Tests
//! drive them directly, without a device.
//!
//! Backends: real devices through cpal ([`cpal_device`]) and a clock-driven virtual device
//! ([`virtual_device`]) for machines with no sound card.
#![deny(missing_docs, missing_debug_implementations)]
#![deny(unsafe_code)]

pub mod aec;
pub mod callback;
pub mod capture;
pub mod convert;
pub mod cpal_device;
pub mod cpal_stream;
pub mod device_health;
pub mod engine;
pub mod error;
pub mod fields;
pub mod jitter;
pub mod playback;
pub mod polyphase;
pub mod position_clock;
#[cfg(target_os = "linux")]
pub mod pulse;
pub mod resample;
pub mod rt_priority;
pub mod stats;
pub mod supervisor;
pub mod virtual_config;
pub mod virtual_device;
pub mod wait;
pub mod wav;

pub use aec::stage::EchoStats;
pub use aec::{AecBackend, AecOptions};
pub use capture::CAPTURE_RATE_HZ;
pub use cpal_device::{
    list_devices, CpalConfig, DeviceInfo, DeviceSelector, Host, Latency, DEFAULT_LATENCY,
};
pub use engine::{Backend, DeviceParams, DeviceStatus, Engine, EngineConfig};
pub use error::{EngineError, Result};
pub use fields::{Fields, Kind, Value};
pub use playback::{InterruptReport, MODEL_RATE_HZ};
pub use stats::Stats;
pub use supervisor::{DeviceEvent, DeviceEventKind};
pub use virtual_device::{VirtualConfig, VirtualInput, VirtualOutput};
pub use wait::{wait_for, Attempt};
