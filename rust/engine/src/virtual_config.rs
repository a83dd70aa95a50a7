//! Settings of the virtual device, checked where they enter: every number has a range, and
//! a value outside it is refused with a message naming the argument, its range and a fix,
//! before any thread starts or any buffer is sized from it.

use std::path::PathBuf;

use crate::error::{EngineError, Result};
use crate::wav::{read_wav_mono_counted, resample_all_counted, MAX_WAV_RATE_HZ, MIN_WAV_RATE_HZ};

/// Longest echo delay the virtual device simulates (the history buffer is sized from it).
pub const MAX_LOOPBACK_DELAY_MS: f64 = 10_000.0;
/// Largest magnitude of `loopback_gain` and of a tone's amplitude (1.0 = full scale).
pub const MAX_GAIN: f32 = 10.0;
/// Largest simulated clock error, either way (±10 %; real crystals are within ±100 ppm).
pub const MAX_CLOCK_SKEW_PPM: f64 = 100_000.0;
/// Longest simulated missed deadline.
pub const MAX_STALL_MS: f64 = 60_000.0;
/// Slowest and fastest paced speed (0 = as fast as possible is allowed as well).
pub const SPEED_RANGE: (f64, f64) = (0.001, 1_000_000.0);

/// Where the virtual device's input comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum VirtualInput {
    /// Digital silence.
    Silence,
    /// A sine tone.
    Tone {
        /// Frequency in Hz.
        freq_hz: f32,
        /// Linear amplitude (1.0 = full scale).
        amplitude: f32,
    },
    /// Mono samples in [-1, 1] at `rate_hz` (resampled to the device rate if needed).
    /// Non-finite samples (NaN, ±inf) are replaced by 0.0 and counted in
    /// `Stats::nonfinite_samples`.
    Samples {
        /// The samples.
        samples: Vec<f32>,
        /// Their sample rate.
        rate_hz: u32,
    },
    /// A WAV file (16/24/32-bit PCM or 32-bit float, any rate and channel count).
    Wav(PathBuf),
}

/// Where the virtual device's output goes.
#[derive(Debug, Clone, PartialEq)]
pub enum VirtualOutput {
    /// Thrown away.
    Discard,
    /// Kept in memory; read it with [`crate::Engine::recording`].
    Memory,
    /// Written to a 16-bit WAV file at the device rate and channel count.
    Wav(PathBuf),
}

/// Settings of the virtual device.
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualConfig {
    /// Device sample rate in Hz (8000..=384000).
    pub sample_rate: u32,
    /// Channels of both input and output (1..=32).
    pub channels: u16,
    /// Frames per period (per callback), 16..=4096.
    pub period_frames: u32,
    /// Input source.
    pub input: VirtualInput,
    /// Repeat a finite input instead of going silent at its end.
    pub input_loop: bool,
    /// Echo path: the output is added to the input after this delay (0..=10000 ms; at least
    /// one period is used).
    pub loopback_delay_ms: Option<f64>,
    /// Gain of the echo path (-10..=10).
    pub loopback_gain: f32,
    /// Output sink.
    pub output: VirtualOutput,
    /// 1.0 = real time, 10.0 = ten times faster, 0.0 = as fast as possible
    /// (0 or 0.001..=1000000).
    pub speed: f64,
    /// Clock error of the simulated device, parts per million (positive = slow clock),
    /// -100000..=100000.
    pub clock_skew_ppm: f64,
    /// Every this many periods the device thread misses its deadline by `stall_ms`.
    pub stall_every_periods: u32,
    /// How late a missed deadline is, in milliseconds (0..=60000).
    pub stall_ms: f64,
    /// Every this many periods the input loses `xrun_periods` periods of audio (an overrun:
    /// the device clock runs on, the input callback is not called); 0 = never.
    pub overrun_every_periods: u32,
    /// Every this many periods the output callback is skipped for `xrun_periods` periods and
    /// the device plays silence instead (an underrun below the engine); 0 = never.
    pub underrun_every_periods: u32,
    /// Periods lost in each overrun or underrun (1..=100).
    pub xrun_periods: u32,
}

impl VirtualConfig {
    /// Whether period `n` (counted from 0) of a stream that loses `len` periods every
    /// `every` is lost: the periods `every·m .. every·m + len` for m ≥ 1.
    pub fn xrun_lost(n: u64, every: u32, len: u32) -> bool {
        every > 0 && n >= u64::from(every) && n % u64::from(every) < u64::from(len)
    }
}

impl Default for VirtualConfig {
    fn default() -> Self {
        Self {
            sample_rate: 48_000,
            channels: 1,
            period_frames: 480,
            input: VirtualInput::Silence,
            input_loop: false,
            loopback_delay_ms: None,
            loopback_gain: 1.0,
            output: VirtualOutput::Memory,
            speed: 1.0,
            clock_skew_ppm: 0.0,
            stall_every_periods: 0,
            stall_ms: 0.0,
            overrun_every_periods: 0,
            underrun_every_periods: 0,
            xrun_periods: 1,
        }
    }
}

fn invalid<T>(msg: String) -> Result<T> {
    Err(EngineError::InvalidInput(msg))
}

/// `Ok` when `value` is finite and within `lo..=hi`; otherwise an error naming `name`.
fn check_range(name: &str, value: f64, lo: f64, hi: f64, hint: &str) -> Result<()> {
    if value.is_finite() && (lo..=hi).contains(&value) {
        return Ok(());
    }
    invalid(format!(
        "virtual device {name} must be a finite number in {lo}..={hi}, got {value}; {hint}"
    ))
}

impl VirtualConfig {
    /// Checks every setting without loading the input.
    ///
    /// # Errors
    /// [`EngineError::InvalidInput`] naming the first argument out of range.
    pub fn validate(&self) -> Result<()> {
        if !(8_000..=384_000).contains(&self.sample_rate) {
            return invalid(format!(
                "virtual device sample_rate {} Hz is not supported; use 8000..=384000 (e.g. 48000)",
                self.sample_rate
            ));
        }
        if self.channels == 0 || self.channels > 32 {
            return invalid(format!(
                "virtual device channels must be 1..=32, got {}",
                self.channels
            ));
        }
        let max_period = crate::callback::MAX_BLOCK_FRAMES as u32;
        if self.period_frames < 16 || self.period_frames > max_period {
            return invalid(format!(
                "virtual device period_frames {} is not supported; use 16..={max_period} (480 = 10 ms \
                 at 48 kHz)",
                self.period_frames
            ));
        }
        let (slowest, fastest) = SPEED_RANGE;
        if !(self.speed == 0.0
            || (self.speed.is_finite() && (slowest..=fastest).contains(&self.speed)))
        {
            return invalid(format!(
                "virtual device speed must be 0 (as fast as possible) or a factor in \
                 {slowest}..={fastest} (1.0 = real time), got {}",
                self.speed
            ));
        }
        if let Some(ms) = self.loopback_delay_ms {
            check_range(
                "loopback_delay_ms",
                ms,
                0.0,
                MAX_LOOPBACK_DELAY_MS,
                "it is an echo delay (e.g. 50), or None for no echo path",
            )?;
        }
        let gain = f64::from(MAX_GAIN);
        check_range(
            "loopback_gain",
            f64::from(self.loopback_gain),
            -gain,
            gain,
            "1.0 adds the output unchanged, 0.5 at half level",
        )?;
        check_range(
            "clock_skew_ppm",
            self.clock_skew_ppm,
            -MAX_CLOCK_SKEW_PPM,
            MAX_CLOCK_SKEW_PPM,
            "real clocks are off by less than 100 ppm; 0 is an exact clock",
        )?;
        check_range(
            "stall_ms",
            self.stall_ms,
            0.0,
            MAX_STALL_MS,
            "it is how late each missed deadline is (e.g. 30)",
        )?;
        if !(1..=100).contains(&self.xrun_periods) {
            return invalid(format!(
                "virtual device xrun_periods must be 1..=100, got {}",
                self.xrun_periods
            ));
        }
        match &self.input {
            VirtualInput::Tone { freq_hz, amplitude } => {
                let nyquist = f64::from(self.sample_rate) / 2.0;
                let f = f64::from(*freq_hz);
                if !(f.is_finite() && f > 0.0 && f < nyquist) {
                    return invalid(format!(
                        "tone frequency {freq_hz} Hz must be between 0 and half the sample rate \
                         ({nyquist} Hz), both excluded"
                    ));
                }
                check_range(
                    "tone amplitude",
                    f64::from(*amplitude),
                    0.0,
                    gain,
                    "1.0 is full scale, 0.5 half",
                )?;
            }
            VirtualInput::Samples { rate_hz, .. } => {
                if !(MIN_WAV_RATE_HZ..=MAX_WAV_RATE_HZ).contains(rate_hz) {
                    return invalid(format!(
                        "virtual device input_rate {rate_hz} Hz is not supported; use \
                         {MIN_WAV_RATE_HZ}..={MAX_WAV_RATE_HZ}, the rate the array was recorded at \
                         (default: sample_rate)"
                    ));
                }
            }
            VirtualInput::Silence | VirtualInput::Wav(_) => {}
        }
        Ok(())
    }

    /// Checks the settings and loads the input at the device rate.
    ///
    /// # Errors
    /// [`EngineError::InvalidInput`] for unusable numbers, [`EngineError::Wav`] for a bad file.
    pub fn prepare_input(&self) -> Result<PreparedInput> {
        self.validate()?;
        let rate = self.sample_rate;
        Ok(match &self.input {
            VirtualInput::Silence => PreparedInput::Silence,
            VirtualInput::Tone { freq_hz, amplitude } => PreparedInput::Tone {
                phase_step: 2.0 * std::f64::consts::PI * f64::from(*freq_hz) / f64::from(rate),
                amplitude: *amplitude,
            },
            VirtualInput::Samples { samples, rate_hz } => {
                let (samples, nonfinite) = resample_all_counted(samples, *rate_hz, rate)?;
                PreparedInput::Clip { samples, nonfinite }
            }
            VirtualInput::Wav(path) => {
                let (samples, nonfinite) = read_wav_mono_counted(path, rate)?;
                PreparedInput::Clip { samples, nonfinite }
            }
        })
    }

    /// Frames of output history the echo path keeps (0 without one): the delay, at least one
    /// period. Bounded by the checks in [`validate`](Self::validate).
    pub fn loopback_history_frames(&self) -> usize {
        self.loopback_delay_ms.map_or(0, |ms| {
            let frames = (ms / 1000.0 * f64::from(self.sample_rate)).round();
            (frames as usize).max(self.period_frames as usize)
        })
    }
}

/// The input source, loaded and at the device rate.
#[derive(Debug)]
pub enum PreparedInput {
    /// Silence.
    Silence,
    /// A sine generator.
    Tone {
        /// Radians per frame.
        phase_step: f64,
        /// Linear amplitude.
        amplitude: f32,
    },
    /// A finite clip.
    Clip {
        /// The clip at the device rate, every sample finite.
        samples: Vec<f32>,
        /// Non-finite samples of the source that were replaced by 0.0 when it was loaded.
        nonfinite: u64,
    },
}

impl PreparedInput {
    /// Non-finite source samples replaced while loading (0 for generated inputs).
    pub fn nonfinite_replaced(&self) -> u64 {
        match self {
            PreparedInput::Clip { nonfinite, .. } => *nonfinite,
            _ => 0,
        }
    }
}
