//! The playback path: model audio in, device audio out, with an atomic flush.
//!
//! [`PlaybackProducer`] (non-real-time, the caller's thread) converts 24 kHz `i16` PCM to
//! `f32`, resamples it to the device rate and pushes it into an SPSC ring.
//! [`PlaybackRenderer`] (real time, the device thread) takes it out in [`render`], runs the
//! jitter buffer and carries out flushes.
//!
//! **Flush.** The producer counts frames pushed; the renderer counts frames consumed.
//! [`PlaybackProducer::interrupt`] stores `flush_to = pushed` in one atomic store and returns.
//! At its next period the renderer sees `flush_to > consumed`, fades the audio it was playing
//! out over `fade_frames`, then skips the ring to `flush_to` in O(1). Frames pushed after the
//! interrupt lie beyond `flush_to` and are kept: the next turn survives the flush.
//!
//! **Jitter buffer.** A turn starts playing when `prebuffer_frames` are queued or the turn has
//! been marked complete ([`PlaybackProducer::end_turn`]). Running dry before the end of a
//! complete turn is an underrun: counted, filled with silence, and the turn waits for the
//! prebuffer again. A producer that cannot fit its next chunk releases the prebuffer, so a
//! prebuffer close to the ring size cannot leave both sides waiting for each other. The
//! prebuffer adapts ([`crate::jitter::JitterBuffer`]): it grows after an underrun and
//! shrinks back slowly while delivery is steady.
//!
//! [`render`]: PlaybackRenderer::render

use std::sync::atomic::{
    AtomicBool, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::Arc;

use crate::convert::i16_to_f32;
use crate::error::{EngineError, Result};
use crate::jitter::JitterBuffer;
use crate::resample::StreamResampler;
use crate::stats::SharedStats;

/// Sample rate of the model audio that [`PlaybackProducer::play`] accepts.
pub const MODEL_RATE_HZ: u32 = 24_000;

/// Positions shared between the producer and the renderer, all in device frames.
#[derive(Debug, Default)]
pub struct PlaybackShared {
    /// Frames ever pushed into the ring (written by the producer only).
    pushed: AtomicU64,
    /// Everything before this frame index is to be discarded (written by the producer only).
    flush_to: AtomicU64,
    /// Frames the renderer has taken out of the ring, played or skipped (renderer only).
    consumed: AtomicU64,
    /// Where the last completed turn ends (producer only): play it out without prebuffering.
    turn_end: AtomicU64,
    /// Device frames the producer's resampler still owes for input it has taken (producer
    /// only): audio received by `play()` but not yet in the ring.
    in_resampler: AtomicU64,
    /// Set by the producer while a `play()` or `end_turn()` cannot fit (producer only): the
    /// renderer then starts the turn without waiting for the prebuffer, or a prebuffer close
    /// to the ring size (or a chunk larger than the free room) would wait forever on both
    /// sides.
    room_wanted: AtomicBool,
    /// Interrupts so far (producer only): a device that flushes below the ring (the native
    /// PulseAudio host) acts on each new one, even when the ring itself was empty.
    interrupts: AtomicU64,
    /// Where the listener was, as a `consumed` position plus one (0: the device does not
    /// say, so all that was consumed counts as heard). Written by a device thread that knows
    /// its read index (the native PulseAudio host). A position rather than a count of
    /// frames ahead, so audio consumed after the measurement is not counted as heard.
    listener_at: AtomicU64,
    /// When `listener_at` was measured ([`mono_ns`]): the listener moves on at the device rate.
    listener_at_ns: AtomicU64,
    /// Wakes a device thread that sleeps in `poll` when an interrupt comes (created by the
    /// device on first use, lives as long as the positions).
    #[cfg(target_os = "linux")]
    waker: std::sync::OnceLock<std::os::fd::OwnedFd>,
}

impl PlaybackShared {
    /// Interrupts so far.
    pub fn interrupts(&self) -> u64 {
        self.interrupts.load(Acquire)
    }

    /// Publishes that the device holds `frames` of what has been consumed so far unplayed,
    /// measured now; 0 also means "nothing known ahead" (device thread; atomics only).
    pub fn set_device_ahead(&self, frames: u64) {
        if frames == 0 {
            self.listener_at.store(0, Release);
            return;
        }
        let consumed = self.consumed.load(Acquire);
        self.listener_at_ns.store(mono_ns(), Relaxed);
        self.listener_at
            .store(consumed.saturating_sub(frames) + 1, Release);
    }

    /// The `consumed` position the listener has reached now: the last measurement moved on
    /// by the time since at `rate` Hz, never past what was consumed.
    pub fn heard_position(&self, rate: u32) -> u64 {
        let consumed = self.consumed.load(Acquire);
        let at = self.listener_at.load(Acquire);
        if at == 0 {
            return consumed;
        }
        let since = mono_ns().saturating_sub(self.listener_at_ns.load(Relaxed));
        let played = (u128::from(since) * u128::from(rate) / 1_000_000_000) as u64;
        (at - 1).saturating_add(played).min(consumed)
    }

    /// An eventfd that becomes readable at every interrupt, for a device thread to `poll`.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)] // eventfd and taking ownership of it, each with its SAFETY note
    pub fn waker_fd(&self) -> Option<i32> {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        let fd = self.waker.get_or_init(|| {
            // SAFETY: eventfd has no preconditions; a negative result is handled below.
            let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
            // SAFETY: raw is a new descriptor owned by nobody else (or -1, checked by the caller).
            unsafe { OwnedFd::from_raw_fd(raw) }
        });
        let raw = fd.as_raw_fd();
        (raw >= 0).then_some(raw)
    }

    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)] // one write to our own eventfd
    fn wake(&self) {
        if let Some(fd) = self.waker.get() {
            use std::os::fd::AsRawFd;
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a valid u64 to our own eventfd.
            let _ = unsafe { libc::write(fd.as_raw_fd(), (&raw const one).cast(), 8) };
        }
    }

    /// Frames queued in the ring and not yet consumed.
    pub fn queued_frames(&self) -> u64 {
        self.pushed
            .load(Acquire)
            .saturating_sub(self.consumed.load(Acquire))
    }

    /// Everything received and not yet played or flushed: the ring plus the audio still in
    /// the producer's resampler. This is the "buffered" of the accounting identity
    /// `frames_pushed = frames_played + flushed_frames + buffered`.
    pub fn buffered_frames(&self) -> u64 {
        self.queued_frames() + self.in_resampler.load(Acquire)
    }
}

/// Nanoseconds on a process-wide monotonic clock (no allocation, no system call beyond
/// reading the clock).
pub fn mono_ns() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let epoch = EPOCH.get_or_init(std::time::Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// What an interrupt cut off: how much of the turn the listener heard and how much was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct InterruptReport {
    /// Model audio of the interrupted turn that had been rendered, in 24 kHz frames.
    pub heard_frames: u64,
    /// Model audio of the interrupted turn received by `play()`, in 24 kHz frames.
    pub received_frames: u64,
    /// Queued audio discarded by the flush, in milliseconds.
    pub discarded_ms: f64,
}

impl InterruptReport {
    /// `heard_frames` in milliseconds.
    pub fn heard_ms(&self) -> f64 {
        self.heard_frames as f64 * 1000.0 / f64::from(MODEL_RATE_HZ)
    }
    /// `received_frames` in milliseconds.
    pub fn received_ms(&self) -> f64 {
        self.received_frames as f64 * 1000.0 / f64::from(MODEL_RATE_HZ)
    }
}

/// Builds a playback ring of `capacity_frames` and returns both ends.
pub fn playback_channel(
    device_rate: u32,
    capacity_frames: usize,
    prebuffer_frames: usize,
    fade_frames: usize,
    stats: Arc<SharedStats>,
) -> Result<(PlaybackProducer, PlaybackRenderer)> {
    let (tx, rx) = rtrb::RingBuffer::new(capacity_frames);
    let jitter = JitterBuffer::new(prebuffer_frames, device_rate, capacity_frames);
    stats
        .jitter_buffer_frames
        .store(jitter.frames() as u64, Relaxed);
    let shared = Arc::new(PlaybackShared::default());
    let producer = PlaybackProducer {
        ring: tx,
        shared: Arc::clone(&shared),
        stats: Arc::clone(&stats),
        accounted: 0,
        dropped_in_resampler: 0,
        resampler: StreamResampler::new(MODEL_RATE_HZ, device_rate)?,
        device_rate,
        scratch_in: Vec::new(),
        scratch_out: Vec::new(),
        turn_start: 0,
        turn_received: 0,
        in_turn: false,
    };
    let renderer = PlaybackRenderer {
        ring: rx,
        shared,
        stats,
        consumed: 0,
        state: RenderState::Idle,
        jitter,
        fade_frames: fade_frames.max(1),
        fade_total: 0,
        fade_pos: 0,
        declick_frames: (device_rate as usize / 1000).max(1),
        ramp_in_pos: usize::MAX,
        tail_value: 0.0,
        tail_pos: usize::MAX,
        last_sample: 0.0,
    };
    Ok((producer, renderer))
}

/// The caller's end of the playback path. Not real-time: it resamples and may allocate.
pub struct PlaybackProducer {
    ring: rtrb::Producer<f32>,
    shared: Arc<PlaybackShared>,
    stats: Arc<SharedStats>,
    /// This producer's contribution to `SharedStats::frames_pushed` so far.
    accounted: u64,
    /// Device frames an interrupt dropped from the resampler (counted as flushed).
    dropped_in_resampler: u64,
    resampler: StreamResampler,
    device_rate: u32,
    scratch_in: Vec<f32>,
    scratch_out: Vec<f32>,
    turn_start: u64,
    turn_received: u64,
    in_turn: bool,
}

impl std::fmt::Debug for PlaybackProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaybackProducer")
            .field("device_rate", &self.device_rate)
            .field("capacity", &self.capacity_frames())
            .finish()
    }
}

impl PlaybackProducer {
    /// Ring capacity in device frames.
    pub fn capacity_frames(&self) -> usize {
        self.ring.buffer().capacity()
    }

    /// Free space in the ring, in device frames.
    pub fn free_frames(&self) -> usize {
        self.ring.slots()
    }

    /// Shared positions (for stats and waiting without holding the producer).
    pub fn shared(&self) -> &Arc<PlaybackShared> {
        &self.shared
    }

    /// Device frames that pushing `model_frames` of 24 kHz audio can take at most.
    pub fn frames_needed(&self, model_frames: usize) -> usize {
        self.resampler.max_output_for(model_frames)
    }

    /// Checks that a chunk of `model_frames` could ever fit into the ring.
    ///
    /// # Errors
    /// [`EngineError::ChunkTooLarge`] when it could not, however long the caller waited.
    pub fn check_fits(&self, model_frames: usize) -> Result<()> {
        let needed = self.frames_needed(model_frames);
        if needed > self.capacity_frames() {
            return Err(EngineError::ChunkTooLarge(format!(
                "a chunk of {model_frames} frames ({:.0} ms at 24 kHz) needs {needed} device frames but \
                 the playback buffer holds at most {} ({:.0} ms); split it into smaller chunks or raise \
                 playback_buffer_ms",
                model_frames as f64 * 1000.0 / f64::from(MODEL_RATE_HZ),
                self.capacity_frames(),
                self.capacity_frames() as f64 * 1000.0 / f64::from(self.device_rate),
            )));
        }
        Ok(())
    }

    /// Pushes 24 kHz mono PCM if the ring has room for all of it, else takes nothing.
    ///
    /// Returns `Ok(true)` when the chunk was queued and `Ok(false)` when the ring is too full
    /// right now (the caller waits and retries; nothing was consumed).
    ///
    /// # Errors
    /// [`EngineError::ChunkTooLarge`] when the chunk can never fit.
    pub fn try_play(&mut self, pcm: &[i16]) -> Result<bool> {
        self.check_fits(pcm.len())?;
        if self.free_frames() < self.frames_needed(pcm.len()) {
            self.shared.room_wanted.store(true, Release);
            return Ok(false);
        }
        self.shared.room_wanted.store(false, Relaxed);
        if !self.in_turn {
            self.in_turn = true;
            self.turn_start = self.shared.pushed.load(Relaxed);
            self.turn_received = 0;
        }
        self.scratch_in.resize(pcm.len(), 0.0);
        i16_to_f32(pcm, &mut self.scratch_in);
        self.scratch_out.clear();
        self.resampler
            .process(&self.scratch_in, &mut self.scratch_out);
        self.turn_received += pcm.len() as u64;
        self.push_scratch();
        self.account();
        Ok(true)
    }

    /// Publishes what the resampler holds and brings `SharedStats::frames_pushed` up to
    /// `pushed + in resampler + dropped from the resampler`, so the accounting identity holds
    /// after every producer call. The resampler's tail can come out a frame shorter or
    /// longer than its estimate, so the delta may be negative.
    fn account(&mut self) {
        let in_resampler = self.resampler.tail_frames() as u64;
        self.shared.in_resampler.store(in_resampler, Release);
        let total = self.shared.pushed.load(Relaxed) + in_resampler + self.dropped_in_resampler;
        let delta = total.wrapping_sub(self.accounted);
        // Two's complement: adding a wrapped negative delta subtracts.
        self.stats.frames_pushed.fetch_add(delta, Relaxed);
        self.accounted = total;
    }

    /// Frames received and not yet played or flushed (ring plus resampler), for `stop()`:
    /// once the device has stopped they are discarded, and counted as flushed.
    pub fn discard_on_stop(&mut self) -> u64 {
        let left = self.shared.buffered_frames();
        self.stats.flushed_frames.fetch_add(left, Relaxed);
        left
    }

    fn push_scratch(&mut self) {
        // Room was checked against the resampler's upper bound, so everything fits.
        let (_, rest) = self.ring.push_partial_slice(&self.scratch_out);
        debug_assert!(rest.is_empty(), "room was checked before pushing");
        let pushed = (self.scratch_out.len() - rest.len()) as u64;
        // Release: the ring's write index is published before the new `pushed`.
        self.shared.pushed.fetch_add(pushed, Release);
    }

    /// Marks the current turn complete: the resampler's tail is pushed and the renderer plays
    /// everything up to here without waiting for the prebuffer. Returns `Ok(false)` when the
    /// ring has no room for the tail yet (retry).
    pub fn try_end_turn(&mut self) -> Result<bool> {
        if self.free_frames() < self.resampler.tail_frames() {
            self.shared.room_wanted.store(true, Release);
            return Ok(false);
        }
        self.shared.room_wanted.store(false, Relaxed);
        self.scratch_out.clear();
        self.resampler.flush(&mut self.scratch_out);
        self.push_scratch();
        self.account();
        self.shared
            .turn_end
            .store(self.shared.pushed.load(Relaxed), Release);
        self.in_turn = false;
        Ok(true)
    }

    /// Flushes playback: everything pushed so far is discarded by the renderer at its next
    /// period, after a short fade. Audio pushed after this call is kept. Returns at once.
    ///
    /// `discarded_ms` counts what this call newly discards: the ring from the later of the
    /// play position and an earlier, not yet carried out flush mark (so a second interrupt
    /// does not report the first one's audio again), plus what the resampler still held.
    pub fn interrupt(&mut self) -> InterruptReport {
        let pushed = self.shared.pushed.load(Relaxed);
        let consumed = self.shared.consumed.load(Acquire);
        // What the device still holds was consumed but not heard (all heard unless it says).
        let heard = self.shared.heard_position(self.device_rate);
        let report = self.report(heard, pushed);
        let already_flushed = self.shared.flush_to.load(Relaxed).max(consumed);
        // Audio still inside the resampler never reaches the ring: it is flushed here, and
        // counted, or it would be neither played nor flushed (10 ms per interrupt at 48 kHz).
        let in_resampler = self.resampler.tail_frames() as u64;
        self.shared.flush_to.store(pushed, Release);
        self.shared.interrupts.fetch_add(1, Release);
        #[cfg(target_os = "linux")]
        self.shared.wake();
        self.shared.room_wanted.store(false, Relaxed);
        self.resampler.reset();
        self.dropped_in_resampler += in_resampler;
        self.stats.flushed_frames.fetch_add(in_resampler, Relaxed);
        self.account();
        self.in_turn = false;
        self.turn_start = pushed;
        self.turn_received = 0;
        let discarded = pushed.saturating_sub(already_flushed) + in_resampler;
        InterruptReport {
            discarded_ms: discarded as f64 * 1000.0 / f64::from(self.device_rate),
            ..report
        }
    }

    /// Progress of the current turn, or of the last one if no new turn has started: a turn
    /// marked complete may still be playing when the user barges in.
    fn report(&self, consumed: u64, pushed: u64) -> InterruptReport {
        let heard_device = consumed.clamp(self.turn_start, pushed) - self.turn_start;
        let heard = (heard_device as u128 * u128::from(MODEL_RATE_HZ)
            / u128::from(self.device_rate)) as u64;
        InterruptReport {
            heard_frames: heard.min(self.turn_received),
            received_frames: self.turn_received,
            discarded_ms: 0.0,
        }
    }

    /// How much of the current turn (or the last, until a new one starts) has been rendered.
    pub fn turn_progress(&self) -> InterruptReport {
        self.report(
            self.shared.consumed.load(Acquire),
            self.shared.pushed.load(Relaxed),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RenderState {
    /// No turn playing; silence without counting an underrun.
    Idle,
    /// A turn ran dry: silence counted as underrun until the prebuffer refills.
    Buffering,
    /// Audio is flowing from the ring.
    Playing,
    /// A flush is under way: the old audio fades out, then the ring skips to `flush_to`.
    Fading,
}

/// The device's end of the playback path. **Real time**: [`render`](Self::render) never
/// allocates, locks or blocks.
pub struct PlaybackRenderer {
    ring: rtrb::Consumer<f32>,
    shared: Arc<PlaybackShared>,
    stats: Arc<SharedStats>,
    consumed: u64,
    state: RenderState,
    jitter: JitterBuffer,
    fade_frames: usize,
    fade_total: usize,
    fade_pos: usize,
    declick_frames: usize,
    ramp_in_pos: usize,
    tail_value: f32,
    tail_pos: usize,
    last_sample: f32,
}

impl std::fmt::Debug for PlaybackRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaybackRenderer")
            .field("consumed", &self.consumed)
            .field("state", &self.state)
            .finish()
    }
}

impl PlaybackRenderer {
    /// Fills `out` (mono, device rate) with the next frames of playback. **Real time.**
    pub fn render(&mut self, out: &mut [f32]) {
        let flush_to = self.shared.flush_to.load(Acquire);
        if flush_to > self.consumed && self.state != RenderState::Fading {
            self.begin_flush(flush_to);
        }
        let mut written = 0;
        while written < out.len() {
            let rest = &mut out[written..];
            written += match self.state {
                RenderState::Fading => self.render_fade(rest),
                RenderState::Idle | RenderState::Buffering => self.render_waiting(rest),
                RenderState::Playing => self.render_playing(rest),
            };
        }
        self.shared.consumed.store(self.consumed, Release);
        self.stats
            .frames_rendered
            .fetch_add(out.len() as u64, Relaxed);
    }

    fn begin_flush(&mut self, flush_to: u64) {
        let old_audio = (flush_to - self.consumed).min(self.ring.slots() as u64) as usize;
        // Only audio that is sounding needs a fade; a waiting turn is silent already.
        self.fade_total = if self.state == RenderState::Playing {
            self.fade_frames.min(old_audio)
        } else {
            0
        };
        self.fade_pos = 0;
        self.state = RenderState::Fading;
        self.stats.flushes.fetch_add(1, Relaxed);
    }

    /// Plays the fade-out of the old audio, then skips to the flush mark. Returns frames written.
    fn render_fade(&mut self, out: &mut [f32]) -> usize {
        if self.fade_pos < self.fade_total {
            let want = (self.fade_total - self.fade_pos).min(out.len());
            let Ok(chunk) = self.ring.read_chunk(want.min(self.ring.slots())) else {
                self.fade_total = self.fade_pos;
                return 0;
            };
            let (a, b) = chunk.as_slices();
            let n = a.len() + b.len();
            let total = self.fade_total as f32;
            for (i, (o, &s)) in out.iter_mut().zip(a.iter().chain(b)).enumerate() {
                // Raised cosine from 1 to 0: no corner at either end, so no click.
                let x = (self.fade_pos + i + 1) as f32 / total;
                *o = s * 0.5 * (1.0 + (std::f32::consts::PI * x).cos());
            }
            chunk.commit_all();
            if n == 0 {
                self.fade_total = self.fade_pos;
                return 0;
            }
            self.fade_pos += n;
            self.consumed += n as u64;
            self.last_sample = out[n - 1];
            self.stats.frames_played.fetch_add(n as u64, Relaxed);
            return n;
        }
        // A second interrupt during the fade moves the mark; always skip to the newest.
        let target = self.shared.flush_to.load(Acquire);
        let skip = (target.saturating_sub(self.consumed) as usize).min(self.ring.slots());
        if let Ok(chunk) = self.ring.read_chunk(skip) {
            // O(1) for f32: commit only moves the read index.
            chunk.commit_all();
        }
        self.consumed += skip as u64;
        self.stats.flushed_frames.fetch_add(skip as u64, Relaxed);
        self.state = RenderState::Idle;
        self.start_tail();
        0
    }

    /// Silence while no turn is playing or while a turn refills its prebuffer.
    fn render_waiting(&mut self, out: &mut [f32]) -> usize {
        let queued = self.ring.slots();
        let turn_end = self.shared.turn_end.load(Acquire);
        let producer_blocked = self.shared.room_wanted.load(Acquire);
        if queued > 0
            && (queued >= self.jitter.frames() || turn_end > self.consumed || producer_blocked)
        {
            self.state = RenderState::Playing;
            self.ramp_in_pos = 0;
            return 0;
        }
        for o in out.iter_mut() {
            *o = self.next_tail_sample();
        }
        if self.state == RenderState::Buffering {
            self.stats
                .underrun_silence_frames
                .fetch_add(out.len() as u64, Relaxed);
        }
        out.len()
    }

    fn render_playing(&mut self, out: &mut [f32]) -> usize {
        let available = self.ring.slots();
        if available == 0 {
            let turn_end = self.shared.turn_end.load(Acquire);
            if turn_end == self.consumed {
                self.state = RenderState::Idle;
            } else {
                self.state = RenderState::Buffering;
                self.stats.underruns.fetch_add(1, Relaxed);
                if self.jitter.on_underrun() {
                    self.publish_jitter();
                }
            }
            self.start_tail();
            return 0;
        }
        let want = available.min(out.len());
        let Ok(chunk) = self.ring.read_chunk(want) else {
            return 0;
        };
        let (a, b) = chunk.as_slices();
        out[..a.len()].copy_from_slice(a);
        out[a.len()..want].copy_from_slice(b);
        chunk.commit_all();
        // A short fade-in after silence, so audio that resumes mid-waveform does not click.
        let mut j = 0;
        while self.ramp_in_pos < self.declick_frames && j < want {
            out[j] *= (self.ramp_in_pos + 1) as f32 / self.declick_frames as f32;
            self.ramp_in_pos += 1;
            j += 1;
        }
        self.consumed += want as u64;
        self.last_sample = out[want - 1];
        self.stats.frames_played.fetch_add(want as u64, Relaxed);
        if self.jitter.on_played(want) {
            self.publish_jitter();
        }
        want
    }

    fn publish_jitter(&self) {
        self.stats
            .jitter_buffer_frames
            .store(self.jitter.frames() as u64, Relaxed);
    }

    /// Frames a turn queues now before it (re)starts to play (the adaptive jitter buffer).
    pub fn jitter_buffer_frames(&self) -> usize {
        self.jitter.frames()
    }

    fn start_tail(&mut self) {
        self.tail_value = self.last_sample;
        self.tail_pos = 0;
        self.last_sample = 0.0;
    }

    /// The output during silence: a 1 ms ramp from the last sample to zero, then zeros.
    fn next_tail_sample(&mut self) -> f32 {
        if self.tail_pos >= self.declick_frames {
            return 0.0;
        }
        self.tail_pos += 1;
        self.tail_value * (1.0 - self.tail_pos as f32 / self.declick_frames as f32)
    }

    /// Positions shared with the producer.
    pub fn shared(&self) -> &Arc<PlaybackShared> {
        &self.shared
    }

    /// Carries out a pending flush at once and without a fade: the device below has
    /// already faded the audio it held (the native PulseAudio host rewrites its queue), so
    /// the ring's continuation must not sound. Skips the ring to the flush mark, counted as
    /// flushed, and goes idle. **Real time.**
    pub fn flush_unfaded(&mut self) {
        let target = self.shared.flush_to.load(Acquire);
        if target > self.consumed {
            if self.state != RenderState::Fading {
                self.stats.flushes.fetch_add(1, Relaxed);
            }
            let skip = (target - self.consumed).min(self.ring.slots() as u64) as usize;
            if let Ok(chunk) = self.ring.read_chunk(skip) {
                chunk.commit_all();
            }
            self.consumed += skip as u64;
            self.stats.flushed_frames.fetch_add(skip as u64, Relaxed);
            self.shared.consumed.store(self.consumed, Release);
        }
        if self.state != RenderState::Idle {
            self.state = RenderState::Idle;
        }
        self.last_sample = 0.0;
        self.tail_pos = usize::MAX;
    }

    /// Frames consumed so far (played or skipped).
    pub fn consumed(&self) -> u64 {
        self.consumed
    }
}
