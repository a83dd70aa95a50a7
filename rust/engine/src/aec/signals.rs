//! Deterministic speech-like test signals for echo tests and benchmarks (no synthesizer
//! needed): voiced syllables with a gliding pitch, harmonics shaped by moving formants,
//! some noisy (fricative) syllables, and pauses, band-limited below 7 kHz so that a 16 kHz
//! capture keeps all of their energy.

use std::f64::consts::PI;

/// Which talker: the two differ in pitch range, formants and rhythm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Voice {
    /// A low voice (pitch 95-140 Hz), e.g. the far end (the model).
    Low,
    /// A higher voice (pitch 180-260 Hz), e.g. the near-end user.
    High,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        // xorshift64*: deterministic and good enough for test signals.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
}

/// Vowel formants (F1, F2, F3) in Hz.
const VOWELS: [(f64, f64, f64); 6] = [
    (730.0, 1090.0, 2440.0),
    (270.0, 2290.0, 3010.0),
    (530.0, 1840.0, 2480.0),
    (570.0, 840.0, 2410.0),
    (300.0, 870.0, 2240.0),
    (660.0, 1720.0, 2410.0),
];

fn formant_gain(f: f64, formants: (f64, f64, f64)) -> f64 {
    let peak = |c: f64, bw: f64| 1.0 / (1.0 + ((f - c) / bw).powi(2));
    0.05 + peak(formants.0, 90.0) + 0.7 * peak(formants.1, 120.0) + 0.4 * peak(formants.2, 170.0)
}

/// `seconds` of speech-like audio at `rate` Hz, RMS `rms` over the talking parts (pauses are
/// silent), the same for the same `seed`.
pub fn speech_like(rate: u32, seconds: f64, voice: Voice, seed: u64, rms: f64) -> Vec<f32> {
    let fs = f64::from(rate);
    let total = (seconds * fs) as usize;
    let mut out = vec![0.0f64; total];
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let (f0_lo, f0_hi, speed) = match voice {
        Voice::Low => (95.0, 140.0, 1.0),
        Voice::High => (180.0, 260.0, 0.85),
    };
    let top = 6_800.0_f64.min(fs / 2.0 * 0.85);
    let mut pos = (rng.range(0.0, 0.05) * fs) as usize;
    let mut phase = 0.0f64;
    let mut noise_state = 0.0f64;
    let mut syllables = 0;
    while pos < total {
        let len = (rng.range(0.12, 0.30) * speed * fs) as usize;
        let end = (pos + len).min(total);
        let f0_start = rng.range(f0_lo, f0_hi);
        let f0_end = rng.range(f0_lo, f0_hi);
        let vowel = VOWELS[(rng.next() * VOWELS.len() as f64) as usize % VOWELS.len()];
        let next_vowel = VOWELS[(rng.next() * VOWELS.len() as f64) as usize % VOWELS.len()];
        let fricative = rng.next() < 0.3;
        let loud = rng.range(0.5, 1.0);
        let n = (end - pos).max(1);
        let harmonics = (top / f0_lo) as usize;
        for (i, o) in out[pos..end].iter_mut().enumerate() {
            let x = i as f64 / n as f64;
            // Raised-cosine attack and release.
            let env = loud * (PI * x).sin().powf(0.6);
            let f0 = f0_start + (f0_end - f0_start) * x;
            phase += 2.0 * PI * f0 / fs;
            let mix = |a: f64, b: f64| a + (b - a) * x;
            let formants = (
                mix(vowel.0, next_vowel.0),
                mix(vowel.1, next_vowel.1),
                mix(vowel.2, next_vowel.2),
            );
            let mut v = 0.0;
            for h in 1..=harmonics {
                let f = f0 * h as f64;
                if f > top {
                    break;
                }
                v += formant_gain(f, formants) / (h as f64).sqrt() * (phase * h as f64).sin();
            }
            let mut s = v * 0.25;
            if fricative && x < 0.35 {
                // A noisy onset: high-passed noise.
                let white = rng.range(-1.0, 1.0);
                let hp = white - noise_state;
                noise_state = white * 0.3 + noise_state * 0.7;
                s = s * (x / 0.35) + hp * 0.6 * (1.0 - x / 0.35);
            }
            *o = s * env;
        }
        pos = end;
        syllables += 1;
        // Short gaps between syllables, a longer pause every few.
        let gap = if syllables % 7 == 0 {
            rng.range(0.25, 0.5)
        } else {
            rng.range(0.02, 0.12)
        };
        pos += (gap * fs) as usize;
    }
    // Scale the talking parts to the requested RMS.
    let talking: Vec<f64> = out.iter().copied().filter(|s| s.abs() > 1e-6).collect();
    let current = (talking.iter().map(|s| s * s).sum::<f64>() / talking.len().max(1) as f64).sqrt();
    let scale = if current > 0.0 { rms / current } else { 0.0 };
    out.iter()
        .map(|&s| (s * scale).clamp(-1.0, 1.0) as f32)
        .collect()
}

/// `played` (a speaker's output) at fractional frame `x`: windowed-sinc interpolation (32
/// taps, Blackman window), 0 outside it. This is how a microphone on another clock samples
/// the continuous sound in the simulated rooms of the echo tests and benchmarks (linear
/// interpolation would add its own time-varying error of about -20 dB at 7 kHz, which no
/// canceller could remove).
pub fn sample_at(played: &[f32], x: f64) -> f32 {
    const HALF: i64 = 16;
    if x < HALF as f64 {
        return 0.0;
    }
    let j = x.floor() as i64;
    if j + HALF >= played.len() as i64 {
        return 0.0;
    }
    let mut acc = 0.0f64;
    for n in (j - HALF + 1)..=(j + HALF) {
        let d = x - n as f64;
        let sinc = if d.abs() < 1e-9 {
            1.0
        } else {
            (std::f64::consts::PI * d).sin() / (std::f64::consts::PI * d)
        };
        // Blackman window over the 32 taps.
        let u = (d + HALF as f64) / (2 * HALF) as f64;
        let w = 0.42 - 0.5 * (2.0 * std::f64::consts::PI * u).cos()
            + 0.08 * (4.0 * std::f64::consts::PI * u).cos();
        acc += f64::from(played[n as usize]) * sinc * w;
    }
    acc as f32
}
