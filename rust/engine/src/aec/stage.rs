//! [`EchoStage`]: the canceller on the capture reader's side of the rings. Not real-time.
//!
//! The capture reader hands it the capture audio it has just resampled to 16 kHz. The stage
//! drains the reference tap, resamples the reference to 16 kHz (its own streaming
//! resampler, 10 ms blocks so the newest reference is never held back long), and runs the
//! canceller in 10 ms frames. Before each capture frame it feeds every reference frame that
//! the speaker had rendered by the time the microphone delivered that frame, found from the
//! two streams' frame counters (see [`super::tap`]); the canceller's own delay estimator
//! finds the acoustic and buffering delay on top.
//!
//! Positions are absolute sample indices at 16 kHz: capture index `k` is capture-ring frame
//! `k × Ri / 16000`, reference index `j` is output frame `j × Ro / 16000` (both resamplers
//! trim their start-up delay, so the mapping is exact).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use super::align::{Interpolator, OffsetTrack};
pub use super::shared::{EchoShared, EchoStats};
use super::tap::TapReader;
use super::{make_canceller, AecOptions, EchoCanceller, AEC_FRAME, AEC_RATE_HZ};
use crate::error::Result;
use crate::resample::StreamResampler;

/// Reference fed ahead of an exact device-time pairing point: none. The reference a capture
/// frame pairs with is rendered in the same device period, and a device running in real time
/// has rendered nothing further (feeding ahead would only ever find it missing). The echo
/// path is at least a period, so the echo still comes after its reference.
const REFERENCE_LEAD: f64 = 0.0;
/// Reference fed ahead of the counters' pairing point (10 ms): they pair the echo both
/// devices' buffering late already; an echo one device period after rendering (the
/// shortest a device can have) would otherwise arrive with zero headroom.
const COUNTED_LEAD: f64 = 160.0;
/// Consecutive device-time offset readings (one per reader call) off the same way that
/// make a step.
const STEP_READINGS: usize = 3;
/// A device-time pairing offset that moved by more than this (8 ms, above PulseAudio's
/// one-period toggling of its delay reports) is a glitch of one of the streams (audio lost
/// or inserted below the engine): the pairing follows it at once.
const STEP_SAMPLES: f64 = 128.0;
/// Resampled reference kept behind the newest pairing position (200 ms), so that a step
/// back (an output underrun: the speaker played silence, its audio came later) finds it.
const HISTORY_SAMPLES: f64 = 3_200.0;
/// A jump of the pairing offset larger than this (50 ms) is a re-start, not drift.
const REALIGN_SAMPLES: f64 = 800.0;
/// Capture samples (0.5 s) between readings of the pairing offset for the drift fit.
const OFFSET_WINDOW: f64 = 8_000.0;
/// Samples over which a phase error of the re-timed reference is slewed out (2 s)...
const SLEW_SAMPLES: f64 = 32_000.0;
/// ... at a rate of at most 300 ppm, slow enough for the canceller to follow.
const MAX_SLEW: f64 = 3e-4;
/// With exact device time, capture held back at most (30 ms) while the reference it pairs
/// with is on its way:
/// AEC3 pairs render and capture by counting calls, and a capture frame processed before
/// its reference (then fed in a burst) moves the echo against its model. Measured on the
/// virtual device with forced overruns: without the hold, 5-22 dB after each glitch; with
/// it, 42-79 dB (`tests/echo_xrun.rs`).
const MAX_HOLD: usize = 480;
/// Reference older than this (250 ms) behind its capture is dropped, not fed in a burst.
const MAX_REFERENCE_LAG: f64 = 4_000.0;
/// A capture frame whose reference is missing by more than this (30 ms) counts as late.
const LATE_SAMPLES: f64 = 480.0;
/// Reference waiting more than this (2 s) ahead of the capture is dropped.
const MAX_REFERENCE_AHEAD: usize = 32_000;
/// Gaps in the reference up to this long (1 s) are filled with silence, longer ones restart it.
const MAX_GAP_SECONDS: u64 = 1;
/// Canceller figures are read every this many frames (0.5 s).
const METRICS_EVERY: u32 = 50;

/// The canceller and its reference stream, owned by the capture reader.
pub struct EchoStage {
    canceller: Box<dyn EchoCanceller>,
    options: AecOptions,
    shared: Arc<EchoShared>,
    tap: TapReader,
    ref_rate: u32,
    ref_resampler: StreamResampler,
    /// Output frame the next tap block should start at.
    ref_next: Option<u64>,
    /// Resampled reference waiting to be fed; `ref16[0]` has absolute index `ref_start`.
    ref16: Vec<f32>,
    ref_start: f64,
    ref_scratch: Vec<f32>,
    /// Capture samples not yet processed; `pending[0]` has absolute index `cap_start`.
    pending: Vec<f32>,
    cap_start: f64,
    in_ratio: f64,
    out_ratio: f64,
    /// Fit of the pairing offset (reference index − capture index, 16 kHz samples).
    track: Option<OffsetTrack>,
    /// The track so far rests on one raw reading only (stale by up to an output period).
    provisional: bool,
    last_reading_at: f64,
    /// How far the latest device-time readings were off the pairing, all the same way
    /// (16 kHz samples), at most [`STEP_READINGS`].
    recent: Vec<f64>,
    /// Counted minus device-time offset (16 kHz samples), fixed at the first device-time
    /// reading when the stamps are a sound server's estimates.
    timed_anchor: Option<f64>,
    interp: Interpolator,
    /// The re-timed reference on the capture clock: `rprime[0]` pairs with capture index
    /// `rp_start`; the next sample to make pairs with `gen_next` and reads the reference at
    /// (fractional) index `gen_pos`.
    rprime: Vec<f32>,
    rp_start: f64,
    gen_next: f64,
    gen_pos: f64,
    frame: Vec<f32>,
    /// A frame of silence, fed for a missing reference frame.
    silence: Vec<f32>,
    since_metrics: u32,
    tap_dropped_seen: u64,
}

impl std::fmt::Debug for EchoStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoStage")
            .field("backend", &self.canceller.name())
            .field("provisional", &self.provisional)
            .finish_non_exhaustive()
    }
}

impl EchoStage {
    /// A stage for an input at `input_rate` and an output at `output_rate` (Hz).
    ///
    /// # Errors
    /// When the canceller cannot be built or a rate is unusable.
    pub fn new(
        tap: TapReader,
        input_rate: u32,
        output_rate: u32,
        options: AecOptions,
        shared: Arc<EchoShared>,
    ) -> Result<Self> {
        let canceller = make_canceller(&options)?;
        shared.set_backend(options.backend);
        let tap_dropped_seen = tap.clock().dropped_frames.load(Relaxed);
        Ok(Self {
            canceller,
            options,
            shared,
            tap,
            ref_rate: output_rate,
            ref_resampler: StreamResampler::with_block_ms(output_rate, AEC_RATE_HZ, 10)?,
            ref_next: None,
            ref16: Vec::with_capacity(MAX_REFERENCE_AHEAD),
            ref_start: 0.0,
            ref_scratch: Vec::new(),
            pending: Vec::with_capacity(AEC_FRAME * 8),
            cap_start: 0.0,
            in_ratio: f64::from(AEC_RATE_HZ) / f64::from(input_rate),
            out_ratio: f64::from(AEC_RATE_HZ) / f64::from(output_rate),
            track: None,
            provisional: true,
            last_reading_at: 0.0,
            recent: Vec::with_capacity(STEP_READINGS + 1),
            timed_anchor: None,
            interp: Interpolator::new(),
            rprime: Vec::with_capacity(MAX_REFERENCE_AHEAD),
            rp_start: 0.0,
            gen_next: 0.0,
            gen_pos: 0.0,
            frame: vec![0.0; AEC_FRAME],
            silence: vec![0.0; AEC_FRAME],
            since_metrics: 0,
            tap_dropped_seen,
        })
    }

    /// The current options.
    pub fn options(&self) -> AecOptions {
        self.options
    }

    /// Switches NS and HPF, or the backend (a new canceller, which converges again).
    ///
    /// # Errors
    /// When the library cannot be reconfigured; the old settings stay.
    pub fn set_options(&mut self, options: AecOptions) -> Result<()> {
        if options.backend != self.options.backend {
            self.canceller = make_canceller(&options)?;
            self.shared.set_backend(options.backend);
        } else {
            self.canceller.set_options(&options)?;
        }
        self.options = options;
        Ok(())
    }

    /// Capture samples held until a 10 ms frame is complete.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The capture stream restarts at capture-ring frame `ring_position` (after a clear).
    pub fn capture_reset(&mut self, ring_position: u64) {
        self.pending.clear();
        self.cap_start = ring_position as f64 * self.in_ratio;
    }

    /// Takes the 16 kHz capture audio in `input` (emptied) and appends the processed audio,
    /// in whole 10 ms frames, to `output`.
    pub fn process(&mut self, input: &mut Vec<f32>, output: &mut Vec<f32>) {
        self.drain_tap();
        self.update_track(self.cap_start + (self.pending.len() + input.len()) as f64);
        self.generate();
        self.pending.append(input);
        let enabled = self.shared.enabled.load(Relaxed);
        let mut done = 0;
        while self.pending.len() - done >= AEC_FRAME {
            let k_end = self.cap_start + (done + AEC_FRAME) as f64;
            // Wait (a little) for the frame's reference rather than cancel without it.
            if enabled
                && self.tap.clock().exact()
                && !self.reference_ready(k_end)
                && self.pending.len() - done < AEC_FRAME + MAX_HOLD
            {
                break;
            }
            let started = Instant::now();
            self.feed_reference(k_end, enabled);
            self.frame
                .copy_from_slice(&self.pending[done..done + AEC_FRAME]);
            if enabled {
                if self.canceller.process_capture(&mut self.frame).is_err() {
                    self.shared.errors.fetch_add(1, Relaxed);
                    self.frame
                        .copy_from_slice(&self.pending[done..done + AEC_FRAME]);
                }
                let ns = started.elapsed().as_nanos() as u64;
                self.shared.cost.record(ns);
                self.shared.cost_total_ns.fetch_add(ns, Relaxed);
                self.shared.frames_processed.fetch_add(1, Relaxed);
                self.since_metrics += 1;
                if self.since_metrics >= METRICS_EVERY {
                    self.since_metrics = 0;
                    self.publish_metrics();
                }
            }
            output.extend_from_slice(&self.frame);
            done += AEC_FRAME;
        }
        self.pending.drain(..done);
        self.cap_start += done as f64;
    }

    fn publish_metrics(&mut self) {
        let m = self.canceller.metrics();
        let s = &self.shared;
        s.erle_bits
            .store(m.erle_db.unwrap_or(f64::NAN).to_bits(), Relaxed);
        s.delay_bits
            .store(m.delay_ms.unwrap_or(f64::NAN).to_bits(), Relaxed);
        s.has_metrics.store(true, Relaxed);
    }

    /// How far ahead of a capture frame its reference is fed (16 kHz samples).
    fn lead(&self) -> f64 {
        // The counters pair the echo both devices' buffering late; exact device time pairs it
        // the acoustic path late.
        if self.tap.clock().exact() {
            REFERENCE_LEAD
        } else {
            COUNTED_LEAD
        }
    }

    /// Whether the reference for the capture frame ending at `k_end` has arrived (or there
    /// is no output to wait for).
    fn reference_ready(&self, k_end: f64) -> bool {
        self.track.is_none() || self.rp_start + self.rprime.len() as f64 + 0.5 >= k_end + self.lead()
    }

    /// Feeds the reference due by the capture frame ending at `k_end`. With exact device
    /// time, exactly one frame ([`Self::feed_one`]). With a sound server's clocks the
    /// reference arrives in bursts of an output period (27 ms on PulseAudio's ALSA plugin),
    /// so a frame that came late is fed when it comes ([`Self::feed_due`]): measured on a
    /// real null sink, feeding silence for it instead cost 20-40 dB.
    fn feed_reference(&mut self, k_end: f64, enabled: bool) {
        if self.track.is_none() {
            return; // the output has not rendered yet: nothing to cancel
        }
        if self.tap.clock().exact() {
            self.feed_one(k_end, enabled);
        } else {
            self.feed_due(k_end, enabled);
        }
    }

    /// Feeds the one re-timed reference frame that pairs with the capture frame ending at
    /// `k_end`. AEC3 aligns render and capture by counting calls, so they stay one to one:
    /// a missing frame is fed as silence and counted late, and reference that arrives after
    /// its capture frame has gone is dropped, never fed in a burst (a burst, or a missing
    /// render frame, moves the echo against the canceller's model by whole frames: 1-22 dB
    /// after each forced overrun in `tests/echo_xrun.rs`, 42-79 dB with this).
    fn feed_one(&mut self, k_end: f64, enabled: bool) {
        let j_start = k_end + self.lead() - AEC_FRAME as f64;
        let stale = ((j_start - self.rp_start).round().max(0.0) as usize).min(self.rprime.len());
        if stale > 0 {
            self.rprime.drain(..stale);
            self.rp_start += stale as f64;
            self.shared
                .reference_dropped_frames
                .fetch_add(stale as u64, Relaxed);
        }
        let here = (self.rp_start - j_start).abs() < 0.5 && self.rprime.len() >= AEC_FRAME;
        if enabled {
            let result = if here {
                self.canceller.process_render(&self.rprime[..AEC_FRAME])
            } else {
                self.shared.reference_late_frames.fetch_add(1, Relaxed);
                self.canceller.process_render(&self.silence)
            };
            if result.is_err() {
                self.shared.errors.fetch_add(1, Relaxed);
            }
            self.shared.render_frames.fetch_add(1, Relaxed);
        }
        if here {
            self.rprime.drain(..AEC_FRAME);
            self.rp_start += AEC_FRAME as f64;
        }
    }

    /// Feeds every re-timed reference frame due by the capture frame ending at `k_end`,
    /// late ones included; far too old ones are dropped.
    fn feed_due(&mut self, k_end: f64, enabled: bool) {
        let j_end = k_end + self.lead();
        let mut fed = 0;
        while self.rprime.len() - fed >= AEC_FRAME {
            let start = self.rp_start + fed as f64;
            if start + AEC_FRAME as f64 > j_end + 0.5 {
                break;
            }
            let frame = &self.rprime[fed..fed + AEC_FRAME];
            if start + (AEC_FRAME as f64) < j_end - MAX_REFERENCE_LAG {
                // Far too old for this capture: feeding it in a burst would only confuse
                // the canceller's render buffer.
                self.shared
                    .reference_dropped_frames
                    .fetch_add(AEC_FRAME as u64, Relaxed);
            } else if enabled {
                if self.canceller.process_render(frame).is_err() {
                    self.shared.errors.fetch_add(1, Relaxed);
                }
                self.shared.render_frames.fetch_add(1, Relaxed);
            }
            fed += AEC_FRAME;
        }
        self.rprime.drain(..fed);
        self.rp_start += fed as f64;
        let available_end = self.rp_start + self.rprime.len() as f64;
        if enabled && available_end < j_end - LATE_SAMPLES {
            self.shared.reference_late_frames.fetch_add(1, Relaxed);
        }
    }

    /// Takes the callbacks' pairing offset: a first raw reading at once, then every 0.5 s
    /// the best (least stale) reading of the window into the drift fit.
    fn update_track(&mut self, now: f64) {
        let clock = self.tap.clock();
        let Some(track) = self.track.as_mut() else {
            let first = if clock.exact() {
                clock.timed_offset().or_else(|| clock.offset())
            } else {
                clock.offset()
            };
            if let Some(raw) = first {
                let raw = raw * self.out_ratio;
                self.track = Some(OffsetTrack::new(now, raw));
                self.provisional = true;
                self.last_reading_at = now;
                self.restart_generator(raw);
            }
            return;
        };
        if clock.timed_offset().is_some() {
            self.update_timed(now);
            return;
        }
        if now - self.last_reading_at < OFFSET_WINDOW {
            return;
        }
        let Some(reading) = clock.take_offset_max() else {
            return;
        };
        let reading = reading * self.out_ratio;
        self.last_reading_at = now;
        let jumped = (reading - track.offset_at(now)).abs() > REALIGN_SAMPLES;
        if self.provisional || jumped {
            if jumped && !self.provisional {
                self.shared.realignments.fetch_add(1, Relaxed);
            }
            self.track = Some(OffsetTrack::new(now, reading));
            self.provisional = false;
            self.restart_generator(reading);
        } else {
            track.add(now, reading);
        }
    }

    /// The device-time pairing. Its readings (each the median of the callbacks' last few,
    /// see [`super::tap`]) are exact up to timing noise, so when the last few all sit more
    /// than that noise away from the pairing in the same direction, a glitch has moved one
    /// stream by the audio it lost (or the server grew its buffer) and the pairing follows
    /// at once; otherwise they feed the drift fit. The canceller keeps its state across a
    /// step: the echo path did not change, only where each stream's audio sits.
    fn update_timed(&mut self, now: f64) {
        let Some(timed) = self.tap.clock().timed_offset() else {
            return;
        };
        let Some(track) = self.track.as_mut() else {
            return;
        };
        // A sound server's device time is anchored once to the counters' causal pairing.
        let anchor = if self.tap.clock().exact() {
            0.0
        } else {
            *self
                .timed_anchor
                .get_or_insert_with(|| track.offset_at(now) - timed * self.out_ratio)
        };
        let reading = timed * self.out_ratio + anchor;
        let error = reading - track.offset_at(now);
        if error.abs() <= STEP_SAMPLES {
            self.recent.clear();
            if now - self.last_reading_at >= OFFSET_WINDOW {
                track.add(now, reading);
                self.last_reading_at = now;
            }
            return;
        }
        if self.recent.first().is_some_and(|&e| e.signum() != error.signum()) {
            self.recent.clear();
        }
        self.recent.push(error);
        if self.recent.len() < STEP_READINGS {
            return;
        }
        let mut sorted = self.recent.clone();
        sorted.sort_by(f64::total_cmp);
        let step = sorted[sorted.len() / 2];
        self.shared.shifts.fetch_add(1, Relaxed);
        let offset = track.offset_at(now) + step;
        self.track = Some(OffsetTrack::new(now, offset));
        self.last_reading_at = now;
        self.recent.clear();
        self.restart_generator(offset);
    }

    /// Restarts the re-timed reference at the next capture sample to process.
    fn restart_generator(&mut self, offset: f64) {
        self.rprime.clear();
        // With exact device time on the capture frame grid, so each capture frame pairs with
        // one whole reference frame; otherwise from the next capture sample on.
        self.rp_start = if self.tap.clock().exact() {
            self.cap_start
        } else {
            self.cap_start + self.pending.len() as f64
        };
        self.gen_next = self.rp_start;
        self.gen_pos = self.gen_next + offset;
    }

    /// Re-times as much of the resampled reference onto the capture clock as is available.
    fn generate(&mut self) {
        let Some(track) = self.track.as_ref() else {
            return;
        };
        let err = track.offset_at(self.gen_next) - (self.gen_pos - self.gen_next);
        let step = 1.0 + track.slope() + (err / SLEW_SAMPLES).clamp(-MAX_SLEW, MAX_SLEW);
        let reach = Interpolator::reach() as f64;
        let first = self.ref_start + reach - 1.0;
        if self.gen_pos < first {
            // The reference for these positions is gone (dropped, or before a restart):
            // skip ahead in one go; those capture frames get no reference.
            // Whole frames, so the reference stays on the capture frame grid.
            let frame = AEC_FRAME as f64;
            let n = (((first - self.gen_pos) / step).ceil() / frame).ceil() * frame;
            self.gen_pos += n * step;
            self.gen_next += n;
            self.rprime.clear();
            self.rp_start = self.gen_next;
            self.shared
                .reference_dropped_frames
                .fetch_add(n as u64, Relaxed);
        }
        while self.gen_pos - self.ref_start + reach < self.ref16.len() as f64 {
            let s = self.interp.at(&self.ref16, self.gen_pos - self.ref_start);
            self.rprime.push(s);
            self.gen_next += 1.0;
            self.gen_pos += step;
        }
        // Keep only the reference the next positions still reach.
        let used =
            ((self.gen_pos - self.ref_start).floor() - reach - HISTORY_SAMPLES).max(0.0) as usize;
        let used = used.min(self.ref16.len());
        self.ref16.drain(..used);
        self.ref_start += used as f64;
        if self.rprime.len() > MAX_REFERENCE_AHEAD {
            let excess = (self.rprime.len() - MAX_REFERENCE_AHEAD).next_multiple_of(AEC_FRAME);
            self.rprime.drain(..excess);
            self.rp_start += excess as f64;
            self.shared
                .reference_dropped_frames
                .fetch_add(excess as u64, Relaxed);
        }
    }

    /// Moves every tapped block through the reference resampler into `ref16`.
    fn drain_tap(&mut self) {
        let dropped = self.tap.clock().dropped_frames.load(Relaxed);
        if dropped > self.tap_dropped_seen {
            let lost = (dropped - self.tap_dropped_seen) as f64 * self.out_ratio;
            self.shared
                .reference_dropped_frames
                .fetch_add(lost as u64, Relaxed);
            self.tap_dropped_seen = dropped;
        }
        let mut blocks: Vec<(u64, usize)> = Vec::new();
        self.ref_scratch.clear();
        {
            let scratch = &mut self.ref_scratch;
            self.tap.drain(|position, samples| {
                let before = scratch.len();
                scratch.extend(samples);
                blocks.push((position, scratch.len() - before));
            });
        }
        let mut offset = 0;
        for (position, len) in blocks {
            self.reference_block(position, offset, len);
            offset += len;
        }
        if self.ref16.len() > MAX_REFERENCE_AHEAD {
            let excess = self.ref16.len() - MAX_REFERENCE_AHEAD;
            self.ref16.drain(..excess);
            self.ref_start += excess as f64;
            self.shared
                .reference_dropped_frames
                .fetch_add(excess as u64, Relaxed);
        }
    }

    fn reference_block(&mut self, position: u64, offset: usize, len: usize) {
        match self.ref_next {
            Some(next) if position == next => {}
            Some(next)
                if position > next
                    && position - next <= MAX_GAP_SECONDS * u64::from(self.ref_rate) =>
            {
                // Blocks lost in a full tap ring: keep the timeline with silence.
                let zeros = vec![0.0; (position - next) as usize];
                self.ref_resampler.process(&zeros, &mut self.ref16);
            }
            Some(_) | None => {
                if self.ref_next.is_some() {
                    self.shared.realignments.fetch_add(1, Relaxed);
                    self.shared
                        .reference_dropped_frames
                        .fetch_add(self.ref16.len() as u64, Relaxed);
                }
                self.ref_resampler.reset();
                self.ref16.clear();
                self.ref_start = position as f64 * self.out_ratio;
            }
        }
        let samples = &self.ref_scratch[offset..offset + len];
        self.ref_resampler.process(samples, &mut self.ref16);
        self.ref_next = Some(position + len as u64);
    }
}
