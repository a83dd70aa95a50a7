//! The flush below the ring: what was written to the server, and where to rewrite it.
//!
//! `interrupt()` fades duplex's own ring, but the server's queue still holds up to a buffer
//! of audio written before it. PulseAudio lets a client overwrite that queue: a memblock
//! sent with `PA_SEEK_ABSOLUTE` lands at a byte position of the stream, replacing what was
//! queued there. The device thread asks for the read index R and the sink's fill S (what
//! the sink already took, which plays anyway), then writes at `R + S + margin` a short fade
//! of the audio it had written there, and silence up to its old write index (so the queue
//! keeps its length and the server's requests carry on as before).
//!
//! * [`History`]: the last frames written (interleaved), with a running count of how many
//!   of them were model audio (counted `frames_played`) rather than silence. **Real time**:
//!   preallocated, no allocation after [`History::new`].
//! * [`plan`]: pure seek arithmetic, tested below.
//! * [`History::rewrite`]: builds the faded continuation in place and says how many played
//!   frames it took back (they move from `frames_played` to `flushed_frames`, so
//!   `pushed = played + flushed + buffered` still holds exactly).

/// Where a rewrite goes, in the stream's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// First frame overwritten.
    pub at: u64,
    /// Frames overwritten (up to the old write index).
    pub frames: u64,
    /// Of those, the first ones carry the fade.
    pub fade: u64,
}

/// Where to rewrite, given the server's read index and write index (bytes), the sink's
/// fill in frames, the client's own write index `written` (frames) and the oldest frame
/// still in its history. `None` when less than a fade is left to take back (the ring's own
/// fade then does the job: the queue ends where the ring's continuation begins).
#[allow(clippy::too_many_arguments)]
pub fn plan(
    read_index_bytes: i64,
    write_index_bytes: i64,
    frame_bytes: u32,
    sink_frames: u64,
    margin_frames: u64,
    fade_frames: u64,
    written: u64,
    history_start: u64,
) -> Option<Plan> {
    let fb = i64::from(frame_bytes.max(1));
    let read = u64::try_from(read_index_bytes.max(0) / fb).ok()?;
    // The server counts every byte this connection wrote on the stream; if it ever differed
    // from our count (it should not), positions are translated by the difference.
    let server_written = u64::try_from(write_index_bytes.max(0) / fb).ok()?;
    let at_server = read + sink_frames + margin_frames;
    let at = (at_server + written).checked_sub(server_written)?;
    let at = at.max(history_start);
    let frames = written.checked_sub(at)?;
    (frames >= fade_frames && fade_frames > 0).then_some(Plan {
        at,
        frames,
        fade: fade_frames,
    })
}

/// The stream byte offset of frame `frame` of our count, for `PA_SEEK_ABSOLUTE`.
pub fn server_offset(frame: u64, written: u64, write_index_bytes: i64, frame_bytes: u32) -> i64 {
    let fb = i64::from(frame_bytes);
    let server_written = write_index_bytes.max(0) / fb;
    let ours = i64::try_from(written).unwrap_or(i64::MAX);
    let f = i64::try_from(frame).unwrap_or(i64::MAX);
    (f + server_written - ours) * fb
}

/// The last frames written to the server. **Real time** after construction.
#[derive(Debug)]
pub struct History {
    samples: Box<[f32]>,
    /// `played_before[k % cap]`: model-audio frames among frames `0..k`.
    played_before: Box<[u64]>,
    cap: usize,
    channels: usize,
    /// Frames written in all (the client's write index).
    end: u64,
    /// Model-audio frames among them.
    played: u64,
}

impl History {
    /// Room for `frames` frames of `channels` channels.
    pub fn new(frames: usize, channels: u16) -> Self {
        let cap = frames.max(1);
        let channels = usize::from(channels.max(1));
        Self {
            samples: vec![0.0; cap * channels].into_boxed_slice(),
            played_before: vec![0; cap].into_boxed_slice(),
            cap,
            channels,
            end: 0,
            played: 0,
        }
    }

    /// Frames written so far.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// The oldest frame still held.
    pub fn start(&self) -> u64 {
        self.end.saturating_sub(self.cap as u64)
    }

    fn slot(&self, frame: u64) -> usize {
        (frame % self.cap as u64) as usize
    }

    /// Records `data` (interleaved) as written; its first `played` frames are model audio
    /// (the renderer plays a prefix of each buffer, then silence). **Real time.**
    pub fn push(&mut self, data: &[f32], played: usize) {
        let frames = data.len() / self.channels;
        for (i, frame) in data.chunks_exact(self.channels).enumerate() {
            let k = self.end;
            let s = self.slot(k);
            self.played_before[s] = self.played;
            self.samples[s * self.channels..(s + 1) * self.channels].copy_from_slice(frame);
            if i < played {
                self.played += 1;
            }
            self.end += 1;
        }
        debug_assert!(frames >= played.min(frames));
    }

    fn played_before(&self, frame: u64) -> u64 {
        if frame >= self.end {
            self.played
        } else {
            self.played_before[self.slot(frame)]
        }
    }

    /// Model-audio frames among frames `from..to` (clamped to what is held).
    pub fn played_between(&self, from: u64, to: u64) -> u64 {
        let from = from.clamp(self.start(), self.end);
        let to = to.clamp(from, self.end);
        self.played_before(to) - self.played_before(from)
    }

    /// Rewrites the history over `plan` (a raised-cosine fade of what was there over
    /// `plan.fade` frames, silence after) and returns the played frames taken back: those
    /// after the fade, which the listener will now never hear. **Real time.**
    pub fn rewrite(&mut self, plan: Plan) -> u64 {
        let at = plan.at.max(self.start());
        let fade_end = (at + plan.fade).min(self.end);
        let taken_back = self.played_between(fade_end, self.end);
        let total = (fade_end - at).max(1) as f32;
        for k in at..self.end {
            let s = self.slot(k);
            let gain = if k < fade_end {
                // Raised cosine from 1 to 0, the shape of the ring's own fade.
                let x = (k - at + 1) as f32 / total;
                0.5 * (1.0 + (std::f32::consts::PI * x).cos())
            } else {
                0.0
            };
            for v in &mut self.samples[s * self.channels..(s + 1) * self.channels] {
                *v *= gain;
            }
        }
        // Frames after the fade are silence now: no longer model audio.
        let kept = self.played_before(fade_end);
        for k in fade_end..self.end {
            let s = self.slot(k);
            self.played_before[s] = kept;
        }
        self.played = kept;
        taken_back
    }

    /// Copies frames `from..from + n` (interleaved) into `out`; returns the frames copied.
    /// **Real time.**
    pub fn copy_out(&self, from: u64, out: &mut [f32]) -> usize {
        let n = (out.len() / self.channels).min(self.end.saturating_sub(from) as usize);
        for i in 0..n {
            let s = self.slot(from + i as u64);
            out[i * self.channels..(i + 1) * self.channels]
                .copy_from_slice(&self.samples[s * self.channels..(s + 1) * self.channels]);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_starts_past_the_sinks_fill_and_margin() {
        // 2 channels f32: 8 bytes a frame. Read index 1000 frames, written 4840.
        let p = plan(8000, 4840 * 8, 8, 240, 96, 240, 4840, 0).unwrap();
        assert_eq!(p.at, 1000 + 240 + 96);
        assert_eq!(p.frames, 4840 - 1336);
        assert_eq!(p.fade, 240);
        assert_eq!(server_offset(p.at, 4840, 4840 * 8, 8), 1336 * 8);
    }

    #[test]
    fn plan_translates_a_server_count_that_differs() {
        // The server says 10 frames more were written than we counted.
        let p = plan(8000, 4850 * 8, 8, 0, 0, 48, 4840, 0).unwrap();
        assert_eq!(p.at, 990);
        assert_eq!(server_offset(p.at, 4840, 4850 * 8, 8), 1000 * 8);
    }

    #[test]
    fn nothing_to_take_back_means_no_plan() {
        // The queue is nearly empty: less than a fade after read index + fill.
        assert_eq!(plan(8000, 1100 * 8, 8, 50, 10, 240, 1100, 0), None);
        // Read index beyond our count (should not happen): no plan, no underflow.
        assert_eq!(plan(80_000, 1100 * 8, 8, 0, 0, 1, 1100, 0), None);
        // A rewrite never reaches before the history.
        let p = plan(0, 2000 * 8, 8, 0, 0, 10, 2000, 1500).unwrap();
        assert_eq!((p.at, p.frames), (1500, 500));
    }

    #[test]
    fn history_counts_played_prefixes_and_wraps() {
        let mut h = History::new(100, 1);
        h.push(&[1.0; 60], 40); // 40 played, 20 silence
        h.push(&[1.0; 60], 60); // wraps; all played
        assert_eq!(h.end(), 120);
        assert_eq!(h.start(), 20);
        assert_eq!(h.played_between(0, 120), 20 + 60); // clamped to 20..120
        assert_eq!(h.played_between(40, 60), 0);
        assert_eq!(h.played_between(60, 120), 60);
        assert_eq!(h.played_between(30, 70), 10 + 10);
    }

    #[test]
    fn rewrite_fades_silences_and_takes_back_only_played_frames() {
        let mut h = History::new(1000, 2);
        h.push(&[0.5; 2 * 600], 600);
        h.push(&[0.0; 2 * 100], 0); // idle silence after the turn
        let plan = Plan {
            at: 300,
            frames: 400,
            fade: 48,
        };
        let taken = h.rewrite(plan);
        // 600 - 348 played frames after the fade; the 100 silent ones were never played.
        assert_eq!(taken, 252);
        assert_eq!(h.played_between(0, 700), 348);
        let mut out = vec![9.0; 2 * 400];
        assert_eq!(h.copy_out(300, &mut out), 400);
        // Fade: starts just below the old level, falls monotonically to zero, then silence.
        assert!(out[0] < 0.5 && out[0] > 0.49);
        for w in out[..96].chunks(2).collect::<Vec<_>>().windows(2) {
            assert!(w[1][0] <= w[0][0]);
        }
        assert!(out[2 * 47].abs() < 1e-6);
        assert!(out[96..].iter().all(|&v| v == 0.0));
        // A second rewrite over the same span takes nothing back twice.
        assert_eq!(h.rewrite(plan), 0);
    }

    #[test]
    fn accounting_of_a_rewrite_keeps_the_identity() {
        // pushed = played + flushed + buffered, with a rewrite moving frames from played to
        // flushed: the sum is unchanged.
        let pushed = 10_000u64;
        let mut played = 0u64;
        let mut h = History::new(4096, 1);
        for _ in 0..8 {
            h.push(&[0.1; 480], 480);
            played += 480;
        }
        let buffered = pushed - played;
        let p = plan(2000 * 4, 3840 * 4, 4, 100, 96, 96, h.end(), h.start()).unwrap();
        let back = h.rewrite(p);
        let (played2, flushed2) = (played - back, back);
        assert_eq!(back, 3840 - (2000 + 100 + 96 + 96));
        assert_eq!(played2 + flushed2 + buffered, pushed);
    }
}
