//! Acoustic echo cancellation on the capture path.
//!
//! ```text
//!  output callback ──► ReferenceTap (what it rendered, with its device frame position) ──► tap ring ─┐
//!  input callback ──► capture ring ──► CaptureReader: resample → 16 kHz ──► EchoStage ◄──────────────┘
//!                                                                   (resample the reference → 16 kHz,
//!                                                                    pair by frame counters, AEC3 in 10 ms)
//! ```
//!
//! * [`tap`] is the only part that runs in a device callback: it copies the rendered mono
//!   signal into an SPSC ring and publishes frame counters, allocation- and lock-free.
//! * [`stage::EchoStage`] runs on the reader's thread next to the capture resampler, because
//!   both AEC3 ports allocate on every capture call.
//! * [`EchoCanceller`] is the seam between the engine and an AEC3 implementation, so the
//!   young crates behind it ([`sonora_backend`], [`aec3_backend`]) can be swapped and A/B-tested.

pub mod aec3_backend;
pub mod align;
pub mod shared;
pub mod signals;
pub mod sonora_backend;
pub mod stage;
pub mod tap;

use crate::error::Result;

/// Rate the canceller runs at: the capture chunks' rate, so no extra resampling is needed.
pub const AEC_RATE_HZ: u32 = crate::capture::CAPTURE_RATE_HZ;
/// Samples in one 10 ms canceller frame at [`AEC_RATE_HZ`].
pub const AEC_FRAME: usize = (AEC_RATE_HZ / 100) as usize;

/// Which AEC3 implementation runs behind [`EchoCanceller`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AecBackend {
    /// `sonora` (pure Rust port of WebRTC's audio processing module, AEC3 + NS + HPF).
    #[default]
    Sonora,
    /// `aec3` (RubyBit/aec3-rs, a second pure Rust AEC3 port).
    Aec3,
}

impl AecBackend {
    /// The backend's name as the API and stats spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sonora => "sonora",
            Self::Aec3 => "aec3",
        }
    }

    /// Parses `"sonora"` or `"aec3"`.
    ///
    /// # Errors
    /// [`crate::EngineError::InvalidInput`] for any other name.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "sonora" => Ok(Self::Sonora),
            "aec3" => Ok(Self::Aec3),
            other => Err(crate::EngineError::InvalidInput(format!(
                "unknown echo canceller backend {other:?}; use \"sonora\" or \"aec3\""
            ))),
        }
    }
}

/// Settings of the echo canceller; each processing step can be switched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AecOptions {
    /// The implementation.
    pub backend: AecBackend,
    /// The library's noise suppressor after the canceller (moderate level).
    pub noise_suppression: bool,
    /// The library's high-pass filter (removes DC and rumble below ~80 Hz) before the canceller.
    pub high_pass_filter: bool,
}

impl Default for AecOptions {
    fn default() -> Self {
        Self {
            backend: AecBackend::Sonora,
            noise_suppression: true,
            high_pass_filter: true,
        }
    }
}

/// What a canceller reports about itself; `None` where it has no figure (yet).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EchoMetrics {
    /// Echo return loss enhancement in dB, as the library estimates it.
    pub erle_db: Option<f64>,
    /// The library's estimate of the echo delay (reference to capture), in milliseconds.
    pub delay_ms: Option<f64>,
}

/// One acoustic echo canceller working on 10 ms frames ([`AEC_FRAME`] samples) of mono `f32`
/// at [`AEC_RATE_HZ`], values in [-1, 1]. Not real-time: implementations may allocate.
///
/// Call order: any number of [`process_render`](Self::process_render) frames (what the
/// speaker played), then one [`process_capture`](Self::process_capture) frame (what the
/// microphone heard at about the same time), and so on. The implementation's own delay
/// estimator finds the acoustic delay.
pub trait EchoCanceller: Send {
    /// Short name for stats and logs.
    fn name(&self) -> &'static str;
    /// Takes one frame of the far-end reference.
    ///
    /// # Errors
    /// When the library refuses the frame.
    fn process_render(&mut self, frame: &[f32]) -> Result<()>;
    /// Removes the echo from one capture frame, in place.
    ///
    /// # Errors
    /// When the library refuses the frame.
    fn process_capture(&mut self, frame: &mut [f32]) -> Result<()>;
    /// The library's current figures.
    fn metrics(&mut self) -> EchoMetrics;
    /// Switches noise suppression and the high-pass filter (the backend is fixed).
    ///
    /// # Errors
    /// When the library cannot be reconfigured.
    fn set_options(&mut self, options: &AecOptions) -> Result<()>;
}

/// Builds the canceller `options.backend` names.
///
/// # Errors
/// When the library cannot be set up.
pub fn make_canceller(options: &AecOptions) -> Result<Box<dyn EchoCanceller>> {
    Ok(match options.backend {
        AecBackend::Sonora => Box::new(sonora_backend::SonoraCanceller::new(options)),
        AecBackend::Aec3 => Box::new(aec3_backend::Aec3Canceller::new(options)?),
    })
}
