//! Streaming sample-rate conversion of mono `f32` audio, on the non-real-time side of the rings.
//!
//! [`StreamResampler`] takes blocks of any length, keeps filter state across calls (chunk
//! seams make no clicks), and trims the filter's start-up delay so output frame `k` lines up
//! with input time `k / ratio`. It runs one of two filters:
//!
//! * [`StreamResampler::new`]: rubato's synchronous FFT resampler, input staged until a whole
//!   20 ms block is there. Cheapest per sample; used where audio arrives ahead of real time
//!   (playback, WAV files), so holding a block back costs nothing audible.
//! * [`StreamResampler::low_latency`]: the engine's own polyphase FIR
//!   ([`crate::polyphase`]), every output sample computed as soon as its input is there, for
//!   the capture path, where each millisecond held back is a millisecond of reply latency.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler, WindowFunction};

use crate::error::{EngineError, Result};
use crate::polyphase::PolyphaseFir;

/// The filter a [`StreamResampler`] runs.
enum Core {
    /// Equal rates: samples pass through.
    Pass,
    /// rubato's FFT resampler, fed whole chunks of `chunk_in` frames.
    Fft(Box<Fft<f32>>),
    /// The low-latency polyphase FIR (trims its own delay).
    Fir(PolyphaseFir),
}

/// Converts a stream of mono `f32` samples from one rate to another, keeping state between
/// calls. Equal rates pass samples through unchanged.
pub struct StreamResampler {
    input_rate: u32,
    output_rate: u32,
    inner: Core,
    chunk_in: usize,
    pending: Vec<f32>,
    scratch_out: Vec<f32>,
    trim_remaining: usize,
    input_since_reset: u64,
    output_since_reset: u64,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("input_rate", &self.input_rate)
            .field("output_rate", &self.output_rate)
            .field("chunk_in", &self.chunk_in)
            .field("low_latency", &matches!(self.inner, Core::Fir(_)))
            .finish()
    }
}

impl StreamResampler {
    /// A resampler from `input_rate` to `output_rate` (Hz), working in 20 ms chunks: the
    /// anti-aliasing filter's cutoff rises with the FFT length, and at 16 kHz a 10 ms block
    /// puts -2 dB at 7.2 kHz where a 20 ms block keeps the band flat (-0.1 dB) to 7.49 kHz.
    /// A 20 ms capture chunk is ready only 5 ms later than with 10 ms blocks; playback
    /// audio arrives ahead of real time, so its staging costs nothing audible.
    ///
    /// # Errors
    /// [`EngineError::InvalidInput`] if a rate is zero or the pair is unusable.
    pub fn new(input_rate: u32, output_rate: u32) -> Result<Self> {
        Self::with_block_ms(input_rate, output_rate, 20)
    }

    /// As [`new`](Self::new), with blocks of `block_ms` milliseconds of input: shorter blocks
    /// hold audio back for less time at the price of a lower passband edge (the echo
    /// canceller's reference uses 10 ms).
    ///
    /// # Errors
    /// [`EngineError::InvalidInput`] if a rate is zero or the pair is unusable.
    pub fn with_block_ms(input_rate: u32, output_rate: u32, block_ms: u32) -> Result<Self> {
        Self::check_rates(input_rate, output_rate)?;
        let (inner, chunk_in, max_out) = if input_rate == output_rate {
            (Core::Pass, 0, 0)
        } else {
            let chunk = (input_rate as usize * block_ms.clamp(1, 1000) as usize / 1000).max(1);
            // One FFT block per chunk (rubato's `new` would split blocks above 256 frames,
            // which shortens the FFT and lowers the cutoff again).
            let fft = Fft::<f32>::new_custom(
                input_rate as usize,
                output_rate as usize,
                chunk,
                1,
                1,
                WindowFunction::BlackmanHarris2,
                FixedSync::Input,
            )
            .map_err(|e| {
                EngineError::InvalidInput(format!(
                    "cannot resample {input_rate} Hz -> {output_rate} Hz: {e}"
                ))
            })?;
            let chunk_in = fft.input_frames_next();
            let max_out = fft.output_frames_max();
            (Core::Fft(Box::new(fft)), chunk_in, max_out)
        };
        Ok(Self::build(
            input_rate,
            output_rate,
            inner,
            chunk_in,
            max_out,
        ))
    }

    /// A resampler that holds nothing back beyond its filter's delay: each output sample is
    /// computed as soon as the input it depends on is there (see [`crate::polyphase`]: flat
    /// to 7.47 kHz at 16 kHz, no aliasing, 6.8 ms delay at 48 or 44.1 → 16 kHz). For rate
    /// pairs too unrelated for its filter table it falls back to [`new`](Self::new).
    ///
    /// # Errors
    /// [`EngineError::InvalidInput`] if a rate is zero or the pair is unusable.
    pub fn low_latency(input_rate: u32, output_rate: u32) -> Result<Self> {
        Self::check_rates(input_rate, output_rate)?;
        match PolyphaseFir::new(input_rate, output_rate) {
            Some(fir) => Ok(Self::build(input_rate, output_rate, Core::Fir(fir), 0, 0)),
            None => Self::new(input_rate, output_rate),
        }
    }

    fn check_rates(input_rate: u32, output_rate: u32) -> Result<()> {
        if input_rate == 0 || output_rate == 0 {
            return Err(EngineError::InvalidInput(format!(
                "sample rates must be positive, got {input_rate} Hz -> {output_rate} Hz"
            )));
        }
        Ok(())
    }

    fn build(
        input_rate: u32,
        output_rate: u32,
        inner: Core,
        chunk_in: usize,
        max_out: usize,
    ) -> Self {
        let mut resampler = Self {
            input_rate,
            output_rate,
            inner,
            chunk_in,
            pending: Vec::with_capacity(chunk_in),
            scratch_out: vec![0.0; max_out],
            trim_remaining: 0,
            input_since_reset: 0,
            output_since_reset: 0,
        };
        resampler.reset();
        resampler
    }

    /// Input rate in Hz.
    pub fn input_rate(&self) -> u32 {
        self.input_rate
    }

    /// Output rate in Hz.
    pub fn output_rate(&self) -> u32 {
        self.output_rate
    }

    /// Input frames the resampler holds back until a whole chunk is there (at most this
    /// many; 0 for the low-latency filter, which holds nothing back).
    pub fn chunk_frames(&self) -> usize {
        self.chunk_in
    }

    /// Whether this is the [`low_latency`](Self::low_latency) filter.
    pub fn is_low_latency(&self) -> bool {
        matches!(self.inner, Core::Fir(_))
    }

    /// An upper bound on the output frames that [`process`](Self::process) can append for
    /// `input_frames` of input.
    pub fn max_output_for(&self, input_frames: usize) -> usize {
        match &self.inner {
            Core::Pass => input_frames,
            Core::Fft(fft) => {
                let chunks = (self.pending.len() + input_frames) / self.chunk_in;
                chunks * fft.output_frames_max()
            }
            Core::Fir(fir) => fir.max_output_for(input_frames),
        }
    }

    /// Input frames still to come before `output_frames` more output frames are out: exact
    /// for the low-latency filter, an upper bound for the block resampler (a whole block).
    pub fn input_needed_for(&self, output_frames: usize) -> usize {
        match &self.inner {
            Core::Pass => output_frames,
            Core::Fir(fir) => fir.input_needed_for(output_frames),
            Core::Fft(_) => {
                (output_frames as u64 * u64::from(self.input_rate))
                    .div_ceil(u64::from(self.output_rate)) as usize
                    + self.chunk_in
            }
        }
    }

    /// Output frames [`flush`](Self::flush) would still append for the input given so far.
    pub fn tail_frames(&self) -> usize {
        self.expected_output()
            .saturating_sub(self.output_since_reset) as usize
    }

    fn expected_output(&self) -> u64 {
        (self.input_since_reset as u128 * self.output_rate as u128 / self.input_rate as u128) as u64
    }

    /// Resamples `input` and appends what is ready to `output`; keeps the rest for later.
    pub fn process(&mut self, mut input: &[f32], output: &mut Vec<f32>) {
        self.input_since_reset += input.len() as u64;
        match &mut self.inner {
            Core::Pass => {
                output.extend_from_slice(input);
                self.output_since_reset += input.len() as u64;
                return;
            }
            Core::Fir(fir) => {
                let before = output.len();
                fir.process(input, output);
                self.output_since_reset += (output.len() - before) as u64;
                return;
            }
            Core::Fft(_) => {}
        }
        if !self.pending.is_empty() {
            let take = (self.chunk_in - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.pending.len() == self.chunk_in {
                let staged = std::mem::take(&mut self.pending);
                self.process_chunk(&staged, output);
                self.pending = staged;
                self.pending.clear();
            }
        }
        while input.len() >= self.chunk_in {
            self.process_chunk(&input[..self.chunk_in], output);
            input = &input[self.chunk_in..];
        }
        self.pending.extend_from_slice(input);
    }

    fn process_chunk(&mut self, chunk: &[f32], output: &mut Vec<f32>) {
        let Core::Fft(fft) = &mut self.inner else {
            return;
        };
        let frames_out = self.scratch_out.len();
        let input = InterleavedSlice::new(chunk, 1, chunk.len()).expect("mono slice");
        let mut out =
            InterleavedSlice::new_mut(&mut self.scratch_out, 1, frames_out).expect("mono slice");
        let (_, produced) = fft
            .process_into_buffer(&input, &mut out, None)
            .expect("chunk sized by the resampler itself");
        let skip = self.trim_remaining.min(produced);
        self.trim_remaining -= skip;
        output.extend_from_slice(&self.scratch_out[skip..produced]);
        self.output_since_reset += (produced - skip) as u64;
    }

    /// Ends the stream: appends the delayed tail so that exactly `input × ratio` frames have
    /// come out since the last reset, then resets.
    pub fn flush(&mut self, output: &mut Vec<f32>) {
        if !matches!(self.inner, Core::Pass) {
            let expected = self.expected_output();
            let missing = (expected.saturating_sub(self.output_since_reset)) as usize;
            let zeros = vec![0.0; self.chunk_in.max(self.input_needed_for(missing))];
            // Feed silence until the resampler's delay line has given up everything real.
            let mut guard = 0;
            while self.output_since_reset < expected && guard < 64 {
                let fill = match &self.inner {
                    Core::Fir(_) => zeros.len(),
                    _ => self.chunk_in - self.pending.len(),
                };
                let input_before = self.input_since_reset;
                self.process(&zeros[..fill], output);
                self.input_since_reset = input_before; // padding is not real input
                guard += 1;
            }
            let excess = (self.output_since_reset - expected.min(self.output_since_reset)) as usize;
            output.truncate(output.len() - excess.min(output.len()));
        }
        self.reset();
    }

    /// Drops all state: staged input and the filter's history. The next output starts fresh.
    pub fn reset(&mut self) {
        self.pending.clear();
        self.input_since_reset = 0;
        self.output_since_reset = 0;
        match &mut self.inner {
            Core::Pass => {}
            Core::Fft(fft) => {
                fft.reset();
                self.trim_remaining = fft.output_delay();
            }
            Core::Fir(fir) => fir.reset(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, freq: f32, frames: usize) -> Vec<f32> {
        (0..frames)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    #[test]
    fn equal_rates_pass_through() {
        let mut r = StreamResampler::new(16000, 16000).unwrap();
        let mut out = Vec::new();
        r.process(&[0.1, 0.2, 0.3], &mut out);
        assert_eq!(out, vec![0.1, 0.2, 0.3]);
    }

    #[test]
    fn flush_gives_exactly_ratio_times_input() {
        for &(a, b) in &[
            (48000, 16000),
            (44100, 16000),
            (24000, 48000),
            (24000, 44100),
        ] {
            let mut r = StreamResampler::new(a, b).unwrap();
            let input = sine(a, 440.0, 12345);
            let mut out = Vec::new();
            for block in input.chunks(777) {
                r.process(block, &mut out);
            }
            r.flush(&mut out);
            assert_eq!(out.len() as u64, 12345u64 * b as u64 / a as u64, "{a}->{b}");
        }
    }

    #[test]
    fn output_is_time_aligned_with_input() {
        // An impulse at input frame 2400 must come out near output frame 2400 * ratio.
        let mut r = StreamResampler::new(24000, 48000).unwrap();
        let mut input = vec![0.0; 4800];
        input[2400] = 1.0;
        let mut out = Vec::new();
        r.process(&input, &mut out);
        r.flush(&mut out);
        let peak = out
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap()
            .0;
        assert!((peak as i64 - 4800).abs() <= 1, "peak at {peak}");
    }

    #[test]
    fn rejects_zero_rate() {
        assert!(matches!(
            StreamResampler::new(0, 16000),
            Err(EngineError::InvalidInput(_))
        ));
    }
}
