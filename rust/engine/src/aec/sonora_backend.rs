//! [`EchoCanceller`] on `sonora`, a pure Rust port of WebRTC's audio processing module
//! (AEC3, noise suppression, high-pass filter). Pinned to 0.2.0: the crate is young.

use sonora::config::{EchoCanceller as SonoraAec, HighPassFilter, NoiseSuppression};
use sonora::{AudioProcessing, Config, StreamConfig};

use super::{AecOptions, EchoCanceller, EchoMetrics, AEC_FRAME, AEC_RATE_HZ};
use crate::error::{EngineError, Result};

/// sonora's AEC3 with optional NS and HPF, mono at [`AEC_RATE_HZ`].
pub struct SonoraCanceller {
    apm: AudioProcessing,
    out: Vec<f32>,
    render_out: Vec<f32>,
}

impl std::fmt::Debug for SonoraCanceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SonoraCanceller").finish_non_exhaustive()
    }
}

fn config(options: &AecOptions) -> Config {
    Config {
        echo_canceller: Some(SonoraAec {
            // AEC3 would switch the HPF on by itself; let the option decide.
            enforce_high_pass_filtering: options.high_pass_filter,
            ..SonoraAec::default()
        }),
        high_pass_filter: options.high_pass_filter.then(HighPassFilter::default),
        noise_suppression: options.noise_suppression.then(NoiseSuppression::default),
        ..Config::default()
    }
}

impl SonoraCanceller {
    /// A canceller with `options`' NS and HPF settings.
    pub fn new(options: &AecOptions) -> Self {
        let stream = StreamConfig::new(AEC_RATE_HZ, 1);
        let apm = AudioProcessing::builder()
            .config(config(options))
            .capture_config(stream)
            .render_config(stream)
            .build();
        Self {
            apm,
            out: vec![0.0; AEC_FRAME],
            render_out: vec![0.0; AEC_FRAME],
        }
    }
}

fn apm_error(what: &str, e: sonora::Error) -> EngineError {
    EngineError::Device(format!(
        "echo canceller (sonora) refused a {what} frame: {e:?}"
    ))
}

impl EchoCanceller for SonoraCanceller {
    fn name(&self) -> &'static str {
        "sonora"
    }

    fn process_render(&mut self, frame: &[f32]) -> Result<()> {
        self.apm
            .process_render_f32(&[frame], &mut [&mut self.render_out[..]])
            .map_err(|e| apm_error("render", e))
    }

    fn process_capture(&mut self, frame: &mut [f32]) -> Result<()> {
        self.apm
            .process_capture_f32(&[&*frame], &mut [&mut self.out[..]])
            .map_err(|e| apm_error("capture", e))?;
        frame.copy_from_slice(&self.out);
        Ok(())
    }

    fn metrics(&mut self) -> EchoMetrics {
        let s = self.apm.statistics();
        EchoMetrics {
            erle_db: s.echo_return_loss_enhancement,
            delay_ms: s.delay_ms.or(s.delay_median_ms).map(f64::from),
        }
    }

    fn set_options(&mut self, options: &AecOptions) -> Result<()> {
        self.apm.apply_config(config(options));
        Ok(())
    }
}
