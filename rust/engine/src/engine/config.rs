//! [`EngineConfig`] and [`Backend`]: the engine's settings and their validation.

use crate::cpal_device::CpalConfig;
use crate::error::{EngineError, Result};
use crate::virtual_device::VirtualConfig;

/// Which devices the engine drives.
#[derive(Debug, Clone, PartialEq)]
pub enum Backend {
    /// Real devices through cpal.
    Cpal(CpalConfig),
    /// The clock-driven virtual device.
    Virtual(VirtualConfig),
}

/// Engine settings. `Default` gives 20 ms capture chunks, a 200 ms jitter buffer, a 5 ms
/// flush fade, 2 s of capture buffer and 120 s of playback buffer on the default devices.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Devices to open.
    pub backend: Backend,
    /// Length of each 16 kHz capture chunk in milliseconds (10..=1000).
    pub chunk_ms: u32,
    /// Audio a turn queues before it starts playing, in milliseconds.
    pub prebuffer_ms: u32,
    /// Playback ring size in milliseconds of device audio.
    pub playback_buffer_ms: u32,
    /// Capture ring size in milliseconds of device audio.
    pub capture_buffer_ms: u32,
    /// Fade-out length of a flush in milliseconds.
    pub fade_ms: f64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Cpal(CpalConfig::default()),
            chunk_ms: 20,
            prebuffer_ms: 200,
            playback_buffer_ms: 120_000,
            capture_buffer_ms: 2_000,
            fade_ms: 5.0,
        }
    }
}

impl EngineConfig {
    /// Refuses settings no engine can run with, before anything is opened.
    pub(super) fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(EngineError::InvalidInput(msg));
        if !(10..=1000).contains(&self.chunk_ms) {
            return bad(format!(
                "chunk_ms must be 10..=1000 (the Live API wants 20-40 ms), got {}",
                self.chunk_ms
            ));
        }
        if self.prebuffer_ms > 10_000 {
            return bad(format!(
                "prebuffer_ms must be at most 10000, got {}",
                self.prebuffer_ms
            ));
        }
        if !(100..=3_600_000).contains(&self.playback_buffer_ms) {
            return bad(format!(
                "playback_buffer_ms must be 100..=3600000, got {}",
                self.playback_buffer_ms
            ));
        }
        if !(100..=600_000).contains(&self.capture_buffer_ms) {
            return bad(format!(
                "capture_buffer_ms must be 100..=600000, got {}",
                self.capture_buffer_ms
            ));
        }
        if !(self.fade_ms > 0.0 && self.fade_ms <= 100.0) {
            return bad(format!("fade_ms must be in (0, 100], got {}", self.fade_ms));
        }
        if self.prebuffer_ms >= self.playback_buffer_ms {
            return bad(format!(
                "prebuffer_ms ({}) must be smaller than playback_buffer_ms ({}); lower the \
                 prebuffer or raise the buffer",
                self.prebuffer_ms, self.playback_buffer_ms
            ));
        }
        match &self.backend {
            Backend::Cpal(c) => Self::validate_cpal(c),
            Backend::Virtual(v) => v.validate(),
        }
    }

    /// Real devices: a rate or period asked for must be one a sound card can have, so a typo
    /// (`sample_rate=7`, `period_frames=0`) is refused instead of silently rounded.
    fn validate_cpal(c: &CpalConfig) -> Result<()> {
        if let Some(rate) = c.sample_rate {
            if !(8_000..=384_000).contains(&rate) {
                return Err(EngineError::InvalidInput(format!(
                    "sample_rate {rate} Hz is not a device rate; use 8000..=384000 (e.g. 48000), \
                     or leave it unset to use the device's own rate (the engine resamples)"
                )));
            }
        }
        if let Some(period) = c.period_frames {
            let max = crate::callback::MAX_BLOCK_FRAMES as u32;
            if !(16..=max).contains(&period) {
                return Err(EngineError::InvalidInput(format!(
                    "period_frames {period} is not supported; use 16..={max} (480 = 10 ms at \
                     48 kHz), or leave it unset for about 10 ms"
                )));
            }
        }
        Ok(())
    }
}
