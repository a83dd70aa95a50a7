//! A low-latency streaming resampler for rational rate ratios: one Kaiser-windowed sinc FIR,
//! linear phase, run in polyphase form.
//!
//! Why not rubato's resamplers for the capture path: its FFT resampler holds audio back a
//! whole block (20 ms for a flat band to 7.49 kHz) on top of its filter delay, and its sinc
//! resampler, with the window it offers (Blackman-Harris squared), needs about twice the
//! filter length for the same band edge and stopband, i.e. twice the delay (measured in
//! `benches/RESULTS.md`, "Capture latency"). A Kaiser window is close to optimal for a given
//! transition width and attenuation, so this filter is as short as the band allows: -0.1 dB
//! at 0.934 × the lower Nyquist (7.47 kHz at 16 kHz; python-soxr HQ: 7.45 kHz), about 138 dB
//! down from Nyquist on (no aliasing), with a delay of 6.8 ms at 48 or 44.1 → 16 kHz (656 /
//! 608 taps per output sample). Every output sample is computed as soon as its last input
//! sample is there: no block staging.
//!
//! Output frame `k` lines up with input time `k × in_rate / out_rate`: the filter length is
//! chosen so its delay is a whole number of output frames, which are skipped after a reset.

/// Passband edge of the design, as a fraction of the lower Nyquist frequency. Kaiser's
/// length estimate is conservative: with this edge the gain is measured -0.1 dB at 0.934 ×
/// Nyquist (7.47 kHz at 16 kHz; python-soxr HQ: 7.45 kHz) and -3 dB at 0.96 ×.
const PASS_EDGE: f64 = 0.915;
/// Stopband attenuation of the design, in dB (the float32 floor is about 150 dB).
const STOPBAND_DB: f64 = 140.0;
/// The largest filter table built (taps over all phases); odd rate pairs beyond it are left
/// to the block resampler.
const MAX_TABLE: usize = 1 << 21;

/// A streaming rational resampler (`up / down` after reducing the rates). Not real-time
/// safe to construct; [`process`](Self::process) allocates only while its history buffer
/// grows to the largest block seen.
#[derive(Debug, Clone)]
pub struct PolyphaseFir {
    up: u64,
    down: u64,
    taps: usize,
    /// `up` phases of `taps` coefficients each, reversed so each output is one dot product
    /// with the newest `taps` inputs.
    table: Vec<f32>,
    /// Input samples from input index `base` on (negative indices are the zeros before the
    /// first sample).
    hist: Vec<f32>,
    base: i64,
    received: i64,
    next_out: u64,
    delay_out: u64,
    trim: u64,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Modified Bessel function of the first kind, order 0 (power series; converges fast for the
/// arguments a Kaiser window uses).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..200 {
        term *= q / (k as f64 * k as f64);
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight partial sums over fixed-size blocks: the compiler vectorises this (no bounds
    // checks, no reassociation needed), and each partial sum stays short, so its rounding
    // error stays small.
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        let x: &[f32; 8] = x.try_into().expect("chunks of 8");
        let y: &[f32; 8] = y.try_into().expect("chunks of 8");
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

impl PolyphaseFir {
    /// A resampler from `input_rate` to `output_rate`, or `None` if the rates are zero,
    /// equal, or so unrelated that the filter table would be unreasonably large.
    pub fn new(input_rate: u32, output_rate: u32) -> Option<Self> {
        if input_rate == 0 || output_rate == 0 || input_rate == output_rate {
            return None;
        }
        let g = gcd(u64::from(input_rate), u64::from(output_rate));
        let (up, down) = (u64::from(output_rate) / g, u64::from(input_rate) / g);
        let proto_rate = f64::from(input_rate) * up as f64;
        let nyquist = f64::from(input_rate.min(output_rate)) / 2.0;
        let (pass, stop) = (PASS_EDGE * nyquist, nyquist);
        let cutoff = (pass + stop) / 2.0 / proto_rate; // cycles per prototype sample
        let width = 2.0 * std::f64::consts::PI * (stop - pass) / proto_rate;
        // Kaiser's estimates of the length and the window shape for this attenuation.
        let beta = 0.1102 * (STOPBAND_DB - 8.7);
        let estimate = ((STOPBAND_DB - 8.0) / (2.285 * width)).ceil() as u64 + 1;
        // Length 2·down·k + 1: the delay, (len − 1) / 2 prototype samples, is then exactly
        // k output frames, so the output can be trimmed into line with the input.
        let k = estimate.saturating_sub(1).div_ceil(2 * down).max(1);
        let len = (2 * down * k + 1) as usize;
        let taps = (len.div_ceil(up as usize)).next_multiple_of(8);
        if taps.checked_mul(up as usize)? > MAX_TABLE {
            return None;
        }
        let centre = (len - 1) as f64 / 2.0;
        let i0_beta = bessel_i0(beta);
        let proto: Vec<f64> = (0..len)
            .map(|i| {
                let t = i as f64 - centre;
                let x = 2.0 * cutoff * t;
                let sinc = if t == 0.0 {
                    1.0
                } else {
                    (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
                };
                let r = t / centre;
                let window = bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / i0_beta;
                sinc * window
            })
            .collect();
        let mut table = vec![0.0f32; taps * up as usize];
        for phase in 0..up as usize {
            // Each phase is one output filter; normalising each to unit gain at DC keeps the
            // passband exact and removes the ripple between phases at 0 Hz.
            let sum: f64 = proto.iter().skip(phase).step_by(up as usize).sum();
            let row = &mut table[phase * taps..(phase + 1) * taps];
            for (t, coeff) in proto.iter().skip(phase).step_by(up as usize).enumerate() {
                row[taps - 1 - t] = (coeff / sum) as f32;
            }
        }
        let mut fir = Self {
            up,
            down,
            taps,
            table,
            hist: Vec::new(),
            base: 0,
            received: 0,
            next_out: 0,
            delay_out: k,
            trim: k,
        };
        fir.reset();
        Some(fir)
    }

    /// The filter's delay in output frames (skipped after every reset).
    pub fn delay_frames(&self) -> u64 {
        self.delay_out
    }

    /// Coefficients per output sample.
    pub fn taps(&self) -> usize {
        self.taps
    }

    /// Forgets all input: the next output starts from silence, time-aligned again.
    pub fn reset(&mut self) {
        self.hist.clear();
        self.hist.resize(self.taps - 1, 0.0);
        self.base = -(self.taps as i64 - 1);
        self.received = 0;
        self.next_out = 0;
        self.trim = self.delay_out;
    }

    /// Input index of the newest sample output `n` depends on.
    fn last_input_of(&self, n: u64) -> i64 {
        (n * self.down / self.up) as i64
    }

    /// Resamples `input` and appends every output sample it completes to `output`.
    pub fn process(&mut self, input: &[f32], output: &mut Vec<f32>) {
        self.hist.extend_from_slice(input);
        self.received += input.len() as i64;
        loop {
            let newest = self.last_input_of(self.next_out);
            if newest >= self.received {
                break;
            }
            let phase = ((self.next_out * self.down) % self.up) as usize;
            let start = (newest - (self.taps as i64 - 1) - self.base) as usize;
            let coeffs = &self.table[phase * self.taps..(phase + 1) * self.taps];
            let y = dot(coeffs, &self.hist[start..start + self.taps]);
            self.next_out += 1;
            if self.trim > 0 {
                self.trim -= 1;
            } else {
                output.push(y);
            }
        }
        // Keep only the history the next output still needs.
        let keep_from = self.last_input_of(self.next_out) - (self.taps as i64 - 1);
        let drop = (keep_from - self.base).clamp(0, self.hist.len() as i64) as usize;
        if drop > 0 {
            self.hist.copy_within(drop.., 0);
            self.hist.truncate(self.hist.len() - drop);
            self.base += drop as i64;
        }
    }

    /// Input frames still missing before `more` further output frames come out.
    pub fn input_needed_for(&self, more: usize) -> usize {
        if more == 0 {
            return 0;
        }
        let last = self.next_out + self.trim + more as u64 - 1;
        let need = self.last_input_of(last) + 1;
        (need - self.received).max(0) as usize
    }

    /// An upper bound on the output frames `input_frames` more input can complete.
    pub fn max_output_for(&self, input_frames: usize) -> usize {
        // Output n needs input floor(n·down/up): n < total·up/down can be computed.
        let total = (self.received as u64 + input_frames as u64) * self.up;
        total.div_ceil(self.down).saturating_sub(self.next_out) as usize
    }
}
