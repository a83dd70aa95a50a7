//! The native PulseAudio device thread: one connection, a playback and a record stream,
//! the engine's callbacks driven by the server's requests and record memblocks.
//!
//! **The loop in [`run`] is the device thread and runs in real time**: after setup it only
//! polls the socket (and the playback path's interrupt eventfd), reads packets into the
//! connection's preallocated buffer, renders or captures through the callbacks in
//! [`CallbackSlots`] (taken with `try_lock`, as the cpal streams do), converts in
//! preallocated scratch, and writes memblocks. No allocation, no waiting lock, no logging.
//! The only sleeps are in a flush (a few milliseconds while the sink is about to take its
//! next block; see [`super::rewrite`]).

#![allow(unsafe_code)] // libc calls (getuid, poll, eventfd read), each with its SAFETY note

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use pulseaudio::protocol::{self, Command};

use super::client::{parse_reply, Conn, Packet, Seek, TX_BYTES};
use super::rewrite::{self, History};
use crate::callback::MAX_BLOCK_FRAMES;
use crate::cpal_stream::CallbackSlots;
use crate::device_health::{DeviceHealth, DirectionHealth, FrameClock, RtStatus};
use crate::playback::PlaybackShared;
use crate::position_clock::PositionClock;
use crate::rt_priority;
use crate::stats::SharedStats;

/// How long the device thread sleeps in `poll` at most (it checks for stop between).
const POLL_MS: i32 = 20;
/// Rewrite this far past read index + sink fill: the time the write needs to reach the
/// server before the sink reads on (the prototype's measured margin).
pub const MARGIN_MS: f64 = 2.0;
/// If the sink's fill is below this, its next block is due: wait for it and ask again
/// (a write that arrives after that jump would lose the start of its fade).
const GUARD_MS: f64 = 3.0;
/// A flush that got no timing reply in this long is given up (the ring's fade does it).
const FLUSH_GIVE_UP: Duration = Duration::from_millis(100);
/// Replies to wait for the read index to move, 1 ms apart, where the server reports no sink
/// fill: more than a 2048-frame (43 ms) graph quantum, well within [`FLUSH_GIVE_UP`].
const PULL_TRIES: u8 = 60;

/// The playback stream as the server created it.
#[derive(Debug, Clone, Copy)]
pub struct PlaybackSetup {
    /// The stream's channel on this connection.
    pub channel: u32,
    /// Bytes the server wants at once.
    pub requested_bytes: u32,
    /// Channels and rate.
    pub channels: u16,
    /// Device rate in Hz.
    pub rate: u32,
    /// Granted target length (the buffer), in frames.
    pub tlength_frames: u32,
    /// Fade of a rewrite, in frames.
    pub fade_frames: u32,
}

/// The record stream as the server created it.
#[derive(Debug, Clone, Copy)]
pub struct RecordSetup {
    /// The stream's channel on this connection.
    pub channel: u32,
    /// Channels.
    pub channels: u16,
    /// Device rate in Hz.
    pub rate: u32,
    /// Granted maximum the server holds, in frames (what an overrun can lose beyond).
    pub maxlength_frames: u32,
}

/// A running device thread; dropping it stops the thread and closes the connection.
pub struct PulseThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for PulseThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PulseThread").finish_non_exhaustive()
    }
}

impl Drop for PulseThread {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            // Bounded: the thread polls at most POLL_MS, and its socket I/O times out.
            let _ = t.join();
        }
    }
}

/// What the device thread needs, moved onto it.
#[derive(Debug)]
pub struct Context {
    /// The callbacks.
    pub slots: Arc<CallbackSlots>,
    /// Device counters.
    pub health: Arc<DeviceHealth>,
    /// Engine counters.
    pub stats: Arc<SharedStats>,
    /// The generation this stream runs as.
    pub generation: u64,
}

/// Starts the device thread on `conn`.
///
/// # Errors
/// A message when the thread cannot be spawned.
pub fn spawn(
    conn: Conn,
    play: Option<PlaybackSetup>,
    rec: Option<RecordSetup>,
    ctx: Context,
) -> Result<PulseThread, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut dev = Device::new(conn, play, rec, ctx, Arc::clone(&stop));
    let thread = std::thread::Builder::new()
        .name("duplex-pulse".into())
        .spawn(move || dev.run())
        .map_err(|e| format!("cannot start the PulseAudio device thread: {e}"))?;
    Ok(PulseThread {
        stop,
        thread: Some(thread),
    })
}

#[derive(Debug, Clone, Copy)]
struct Timing {
    read_bytes: i64,
    write_bytes: i64,
    sink_frames: u64,
    at_ns: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Flush {
    Idle,
    /// Waiting for the timing reply with this sequence number.
    Waiting {
        seq: u32,
        tries: u8,
        since_ns: u64,
        /// The read index of the first reply, where the server reports no sink fill.
        first_read: Option<i64>,
    },
}

struct Out {
    setup: PlaybackSetup,
    frame_bytes: u32,
    channels: usize,
    missing_bytes: u64,
    /// Requested bytes not to write: PulseAudio does not account a write with
    /// `PA_SEEK_ABSOLUTE` against what it requested, so after a rewrite of `n` bytes it asks
    /// for `n` more, which would lengthen the queue (the delay) by what was rewritten. The
    /// next `n` requested bytes are skipped instead (measured: without this, 80 ms of
    /// buffer became 148 ms after one interrupt).
    skip_bytes: u64,
    history: History,
    scratch: Box<[f32]>,
    bytes: Box<[u8]>,
    clock: FrameClock,
    /// Cycles the server missed with our queue full (see [`PositionClock`]).
    position: PositionClock,
    /// The server's read index at the last timing reply, and how far it moved when it last
    /// moved (its pull, a graph quantum on PipeWire), in bytes.
    last_read_bytes: Option<i64>,
    last_pull_bytes: i64,
    timing: Option<Timing>,
    timing_outstanding: Option<u32>,
    flush: Flush,
    interrupts_seen: u64,
    shared: Option<Arc<PlaybackShared>>,
}

impl Out {
    fn new(setup: PlaybackSetup, ctx: &Context) -> Self {
        let channels = usize::from(setup.channels.max(1));
        // The playback positions, to see interrupts and publish what the server holds.
        let shared = ctx.slots.output.as_ref().and_then(|m| {
            m.lock()
                .ok()
                .map(|mut cb| Arc::clone(cb.renderer_mut().shared()))
        });
        let tl = setup.tlength_frames as usize;
        Self {
            setup,
            frame_bytes: 4 * u32::from(setup.channels.max(1)),
            channels,
            missing_bytes: u64::from(setup.requested_bytes),
            skip_bytes: 0,
            // Twice the buffer plus a request's worth: a rewrite never reaches further back.
            history: History::new(2 * tl + 2 * MAX_BLOCK_FRAMES, setup.channels),
            scratch: vec![0.0; MAX_BLOCK_FRAMES * channels].into_boxed_slice(),
            bytes: vec![0; TX_BYTES].into_boxed_slice(),
            clock: FrameClock::new(setup.rate, setup.tlength_frames),
            position: PositionClock::new(setup.rate, setup.tlength_frames),
            last_read_bytes: None,
            last_pull_bytes: 0,
            timing: None,
            timing_outstanding: None,
            flush: Flush::Idle,
            interrupts_seen: shared.as_ref().map_or(0, |s| s.interrupts()),
            shared,
        }
    }

    fn ms_frames(&self, ms: f64) -> u64 {
        (ms * f64::from(self.setup.rate) / 1000.0).round() as u64
    }

    /// Feeds the position the listener has heard up to, from a timing reply, to the
    /// [`PositionClock`]. Where the server reports its sink's fill (PulseAudio) that is the
    /// read index minus the fill. Where it does not (pipewire-pulse) the read index jumps a
    /// pull at a time and the reply comes just after a pull: the start of the block pulled
    /// is what has been heard, whatever the pull's size (the graph's quantum changes when
    /// clients come and go). **Real time.**
    fn observe_position(
        &mut self,
        t: &protocol::PlaybackLatency,
        now: u64,
        health: &DirectionHealth,
    ) {
        if !t.playing {
            self.position.reset();
            self.last_read_bytes = None;
            return;
        }
        if let Some(last) = self.last_read_bytes.replace(t.read_offset) {
            if t.read_offset > last {
                self.last_pull_bytes = t.read_offset - last;
            }
        }
        let read = t.read_offset as f64 / f64::from(self.frame_bytes);
        let heard = if t.sink_usec > 0 {
            read - t.sink_usec as f64 * f64::from(self.setup.rate) / 1e6
        } else if self.last_pull_bytes > 0 {
            read - self.last_pull_bytes as f64 / f64::from(self.frame_bytes)
        } else {
            return; // no pull seen yet: the heard position is not known
        };
        self.position.observe(now, heard, health);
    }
}

struct In {
    setup: RecordSetup,
    scratch: Box<[f32]>,
    clock: FrameClock,
    /// Cycles the server missed (see [`PositionClock`]), and the frames delivered so far.
    position: PositionClock,
    delivered_frames: u64,
}

impl In {
    fn new(setup: RecordSetup) -> Self {
        let ch = usize::from(setup.channels.max(1));
        Self {
            setup,
            scratch: vec![0.0; MAX_BLOCK_FRAMES * ch].into_boxed_slice(),
            clock: FrameClock::new(setup.rate, setup.maxlength_frames),
            // Records arrive a graph quantum at a time: the shortest window holds several.
            position: PositionClock::new(setup.rate, 0),
            delivered_frames: 0,
        }
    }
}

/// The device thread's state: allocated by [`Device::new`], then [`Device::run`] serves
/// the streams until `stop` is set, the generation changes or the server goes away.
pub struct Device {
    conn: Conn,
    out: Option<Out>,
    inp: Option<In>,
    ctx: Context,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

fn f32_bytes(samples: &[f32], out: &mut [u8]) -> usize {
    for (o, s) in out.chunks_exact_mut(4).zip(samples) {
        o.copy_from_slice(&s.to_le_bytes());
    }
    samples.len() * 4
}

impl Device {
    /// Everything the loop needs, allocated here (history, scratch, buffers).
    pub fn new(
        conn: Conn,
        play: Option<PlaybackSetup>,
        rec: Option<RecordSetup>,
        ctx: Context,
        stop: Arc<AtomicBool>,
    ) -> Self {
        let out = play.map(|p| Out::new(p, &ctx));
        let inp = rec.map(In::new);
        Self {
            conn,
            out,
            inp,
            ctx,
            stop,
        }
    }

    fn now_ns(&self) -> u64 {
        self.ctx.slots.now_ns()
    }

    /// The device thread's loop. **Real time**: no allocation, no waiting lock.
    pub fn run(&mut self) {
        let status = if self.ctx.slots.realtime {
            rt_priority::promote_current_thread()
        } else {
            RtStatus::Off
        };
        self.ctx.health.output.rt.store(status as u8, Relaxed);
        self.ctx.health.input.rt.store(status as u8, Relaxed);
        let waker = self
            .out
            .as_ref()
            .and_then(|o| o.shared.as_ref())
            .and_then(|s| s.waker_fd())
            .unwrap_or(-1);
        // The server asked for `requested_bytes` when it created the stream.
        if let Err(e) = self.write_missing() {
            self.lost(&e);
            return;
        }
        loop {
            if self.stop.load(Relaxed) || self.ctx.slots.current() != self.ctx.generation {
                break;
            }
            let mut readable = self.conn.has_buffered();
            if !readable {
                let mut fds = [
                    libc::pollfd {
                        fd: self.conn.fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    },
                    libc::pollfd {
                        fd: waker,
                        events: libc::POLLIN,
                        revents: 0,
                    },
                ];
                let n = if waker >= 0 { 2 } else { 1 };
                // SAFETY: fds is a valid array of `n` pollfd structs.
                let r = unsafe { libc::poll(fds.as_mut_ptr(), n, POLL_MS) };
                if r < 0 {
                    continue; // EINTR
                }
                if fds[1].revents & libc::POLLIN != 0 {
                    let mut v = 0u64;
                    // SAFETY: reads 8 bytes into a valid u64 from our own eventfd.
                    let _ = unsafe { libc::read(waker, (&raw mut v).cast(), 8) };
                }
                if fds[0].revents & (libc::POLLHUP | libc::POLLERR) != 0
                    && fds[0].revents & libc::POLLIN == 0
                {
                    self.lost("PulseAudio closed the connection");
                    return;
                }
                readable = fds[0].revents & libc::POLLIN != 0;
            }
            if let Err(e) = self.check_interrupt() {
                self.lost(&e);
                return;
            }
            if readable {
                if let Err(e) = self.handle_packet() {
                    self.lost(&e);
                    return;
                }
            }
        }
        if let Some(s) = self.out.as_ref().and_then(|o| o.shared.as_ref()) {
            s.set_device_ahead(0);
        }
    }

    /// The server is gone (or refused us): the supervisor sees `not_available` and rebuilds.
    fn lost(&mut self, _why: &str) {
        let h = &self.ctx.health;
        for d in [&h.output, &h.input] {
            d.error_callbacks.fetch_add(1, Relaxed);
            d.not_available.store(true, Relaxed);
        }
        self.ctx.stats.device_errors.fetch_add(1, Relaxed);
        self.ctx.stats.device_error_callbacks.fetch_add(1, Relaxed);
        // 2 = "device not available" (see cpal_device::device_error_name).
        self.ctx.stats.last_device_error.store(2, Relaxed);
        if let Some(s) = self.out.as_ref().and_then(|o| o.shared.as_ref()) {
            s.set_device_ahead(0);
        }
    }

    fn handle_packet(&mut self) -> Result<(), String> {
        let now = self.now_ns();
        let version = self.conn.version;
        let out_ch = self.out.as_ref().map(|o| o.setup.channel);
        let in_ch = self.inp.as_ref().map(|i| i.setup.channel);
        // Copy what the packet says out of the borrow of the connection's buffer.
        enum Got {
            Request(u32),
            Timing(u32, Option<protocol::PlaybackLatency>),
            ErrorReply(u32),
            Underflow,
            Killed,
            Data,
            Other,
        }
        let got = match self.conn.read_packet()? {
            Packet::Data { channel, data } if Some(channel) == in_ch => {
                if let Some(inp) = self.inp.as_mut() {
                    capture(inp, data, &self.ctx, now);
                }
                Got::Data
            }
            Packet::Control { command, seq, rest } => match command {
                Command::Request(r) if Some(r.channel) == out_ch => Got::Request(r.length),
                Command::Reply => Got::Timing(
                    seq,
                    parse_reply::<protocol::PlaybackLatency>(rest, version).ok(),
                ),
                Command::Error(_) => Got::ErrorReply(seq),
                Command::Underflow(u) if Some(u.channel) == out_ch => Got::Underflow,
                Command::PlaybackStreamKilled(_) | Command::RecordStreamKilled(_) => Got::Killed,
                _ => Got::Other,
            },
            _ => Got::Other,
        };
        match got {
            Got::Request(len) => {
                if let Some(o) = self.out.as_mut() {
                    o.missing_bytes += u64::from(len);
                }
                self.write_missing()?;
            }
            Got::Timing(seq, Some(t)) => self.on_timing(seq, t, now)?,
            Got::Timing(seq, None) | Got::ErrorReply(seq) => {
                if let Some(o) = self.out.as_mut() {
                    if o.timing_outstanding == Some(seq) {
                        o.timing_outstanding = None;
                    }
                    if matches!(o.flush, Flush::Waiting { seq: s, .. } if s == seq) {
                        o.flush = Flush::Idle;
                    }
                }
                self.write_missing()?;
            }
            Got::Underflow => {
                // The server's queue ran dry: a device underrun (its length is found by the
                // frame clock at the next write).
                self.ctx.health.output.backend_xruns.fetch_add(1, Relaxed);
            }
            Got::Killed => return Err("PulseAudio killed the stream".into()),
            Got::Data | Got::Other => {}
        }
        Ok(())
    }

    fn query_timing(&mut self) -> Result<u32, String> {
        let channel = self.out.as_ref().map_or(0, |o| o.setup.channel);
        let seq =
            self.conn
                .send_command(&Command::GetPlaybackLatency(protocol::LatencyParams {
                    channel,
                    now: SystemTime::now(),
                }))?;
        if let Some(o) = self.out.as_mut() {
            o.timing_outstanding = Some(seq);
        }
        Ok(seq)
    }

    /// A new interrupt starts a flush below the ring: ask where the server reads now.
    fn check_interrupt(&mut self) -> Result<(), String> {
        let Some(o) = self.out.as_mut() else {
            return Ok(());
        };
        let Some(n) = o.shared.as_ref().map(|s| s.interrupts()) else {
            return Ok(());
        };
        if n == o.interrupts_seen {
            if let Flush::Waiting { since_ns, .. } = o.flush {
                if self.ctx.slots.now_ns().saturating_sub(since_ns)
                    > FLUSH_GIVE_UP.as_nanos() as u64
                {
                    o.flush = Flush::Idle;
                    return self.write_missing();
                }
            }
            return Ok(());
        }
        o.interrupts_seen = n;
        let since_ns = self.ctx.slots.now_ns();
        let seq = self.query_timing()?;
        if let Some(o) = self.out.as_mut() {
            o.flush = Flush::Waiting {
                seq,
                tries: 0,
                since_ns,
                first_read: None,
            };
        }
        Ok(())
    }

    fn on_timing(
        &mut self,
        seq: u32,
        t: protocol::PlaybackLatency,
        now: u64,
    ) -> Result<(), String> {
        let Some(o) = self.out.as_mut() else {
            return Ok(());
        };
        let timing = Timing {
            read_bytes: t.read_offset,
            write_bytes: t.write_offset,
            sink_frames: t.sink_usec * u64::from(o.setup.rate) / 1_000_000,
            at_ns: now,
        };
        if o.timing_outstanding == Some(seq) {
            o.timing_outstanding = None;
        }
        o.timing = Some(timing);
        o.observe_position(&t, now, &self.ctx.health.output);
        // Model audio the server holds beyond its read index has not been heard yet.
        let fb = i64::from(o.frame_bytes);
        let ours = rewrite::server_offset(0, o.history.end(), timing.write_bytes, o.frame_bytes);
        let read_ours = u64::try_from((timing.read_bytes - ours) / fb).unwrap_or(0);
        let ahead = o.history.played_between(read_ours, o.history.end());
        if let Some(s) = o.shared.as_ref() {
            s.set_device_ahead(ahead);
        }
        let queued = o.history.end().saturating_sub(read_ours) + timing.sink_frames;
        self.ctx.health.output.delay_frames.store(queued, Relaxed);
        if let Flush::Waiting {
            seq: s,
            tries,
            since_ns,
            first_read,
        } = o.flush
        {
            if s == seq {
                let wait = if timing.sink_frames == 0 {
                    // The server does not say what its graph has taken beyond the read index
                    // (PipeWire's pulse server): the index moves a whole pull (a graph
                    // quantum) at a time. Rewrite just after it moves, a quantum before the
                    // next pull, not inside a pull already taken (measured: 2 of 32
                    // interrupts then ended in a cut instead of the fade).
                    let moved = first_read.is_some_and(|r| r != timing.read_bytes);
                    (!moved && tries < PULL_TRIES).then_some(0.001)
                } else if timing.sink_frames < o.ms_frames(GUARD_MS) && tries < 3 {
                    // The sink takes its next block within the guard: wait for it, ask again.
                    let wait = (timing.sink_frames as f64 / f64::from(o.setup.rate)) + 0.001;
                    Some(wait.min(0.01))
                } else {
                    None
                };
                if let Some(wait) = wait {
                    std::thread::sleep(Duration::from_secs_f64(wait));
                    let seq = self.query_timing()?;
                    if let Some(o) = self.out.as_mut() {
                        o.flush = Flush::Waiting {
                            seq,
                            tries: tries + 1,
                            since_ns,
                            first_read: first_read.or(Some(timing.read_bytes)),
                        };
                    }
                    return Ok(());
                }
                self.rewrite(timing)?;
                if let Some(o) = self.out.as_mut() {
                    o.flush = Flush::Idle;
                }
                return self.write_missing();
            }
        }
        Ok(())
    }

    /// Overwrites the server's queue past its read index with a fade and silence.
    fn rewrite(&mut self, t: Timing) -> Result<(), String> {
        let Some(o) = self.out.as_mut() else {
            return Ok(());
        };
        // PulseAudio rewinds its read index to the rewrite: a jump that loses nothing.
        o.position.reset();
        o.last_read_bytes = None;
        let plan = rewrite::plan(
            t.read_bytes,
            t.write_bytes,
            o.frame_bytes,
            t.sink_frames,
            o.ms_frames(MARGIN_MS),
            u64::from(o.setup.fade_frames),
            o.history.end(),
            o.history.start(),
        );
        let Some(plan) = plan else {
            return Ok(()); // Less than a fade queued: the ring's own fade follows seamlessly.
        };
        // The ring's continuation must not sound after the rewritten fade.
        match self.ctx.slots.output.as_ref().map(Mutex::try_lock) {
            Some(Ok(mut cb)) => cb.renderer_mut().flush_unfaded(),
            _ => return Ok(()),
        }
        let back = o.history.rewrite(plan);
        o.skip_bytes += plan.frames * u64::from(o.frame_bytes);
        let stats = &self.ctx.stats;
        stats.flushed_frames.fetch_add(back, Relaxed);
        stats.frames_played.fetch_sub(back, Relaxed);
        stats.device_rewrites.fetch_add(1, Relaxed);
        stats.device_rewound_frames.fetch_add(plan.frames, Relaxed);
        let mut offset =
            rewrite::server_offset(plan.at, o.history.end(), t.write_bytes, o.frame_bytes);
        let mut seek = Seek::Absolute;
        let per = (TX_BYTES / o.frame_bytes as usize).min(MAX_BLOCK_FRAMES);
        let mut k = plan.at;
        while k < o.history.end() {
            let n = ((o.history.end() - k) as usize).min(per);
            let samples = &mut o.scratch[..n * o.channels];
            let got = o.history.copy_out(k, samples);
            let len = f32_bytes(&samples[..got * o.channels], &mut o.bytes);
            self.conn
                .send_memblock(o.setup.channel, seek, offset, &o.bytes[..len])?;
            seek = Seek::Relative;
            offset = 0;
            k += got as u64;
            if got == 0 {
                break;
            }
        }
        if let Some(s) = o.shared.as_ref() {
            s.set_device_ahead(0);
        }
        Ok(())
    }

    /// Renders and sends what the server asked for (not while a flush waits for its
    /// timing reply: that audio would land after the rewrite point).
    fn write_missing(&mut self) -> Result<(), String> {
        let now = self.now_ns();
        let Some(o) = self.out.as_mut() else {
            return Ok(());
        };
        let skip = o.skip_bytes.min(o.missing_bytes);
        o.skip_bytes -= skip;
        o.missing_bytes -= skip;
        if o.flush != Flush::Idle || o.missing_bytes < u64::from(o.frame_bytes) {
            return Ok(());
        }
        let dir: &DirectionHealth = &self.ctx.health.output;
        dir.callbacks.fetch_add(1, Relaxed);
        let total = (o.missing_bytes / u64::from(o.frame_bytes)) as usize;
        // Audio queued ahead of the listener now, from the last timing reply.
        let delay = o.timing.map(|t| {
            let ours = rewrite::server_offset(0, o.history.end(), t.write_bytes, o.frame_bytes);
            let read = (t.read_bytes - ours) as f64 / f64::from(o.frame_bytes);
            let since = now.saturating_sub(t.at_ns) as f64 * f64::from(o.setup.rate) / 1e9;
            (o.history.end() as f64 - read + t.sink_frames as f64 - since).max(0.0)
        });
        o.clock.output(now, delay, total, dir);
        let per = (TX_BYTES / o.frame_bytes as usize).min(MAX_BLOCK_FRAMES);
        let mut left = total;
        while left > 0 {
            let n = left.min(per);
            let samples = &mut o.scratch[..n * o.channels];
            let before = self.ctx.stats.frames_played.load(Relaxed);
            match self.ctx.slots.output.as_ref().map(Mutex::try_lock) {
                Some(Ok(mut cb)) => cb.process(samples),
                _ => samples.fill(0.0),
            }
            let played = self
                .ctx
                .stats
                .frames_played
                .load(Relaxed)
                .saturating_sub(before);
            o.history.push(samples, played as usize);
            let len = f32_bytes(samples, &mut o.bytes);
            self.conn
                .send_memblock(o.setup.channel, Seek::Relative, 0, &o.bytes[..len])?;
            o.missing_bytes -= len as u64;
            left -= n;
        }
        if o.timing_outstanding.is_none() {
            self.query_timing()?;
        }
        Ok(())
    }
}

/// Hands one record memblock to the input callback. **Real time.**
fn capture(inp: &mut In, data: &[u8], ctx: &Context, now: u64) {
    let ch = usize::from(inp.setup.channels.max(1));
    let dir = &ctx.health.input;
    dir.callbacks.fetch_add(1, Relaxed);
    let frames = data.len() / (4 * ch);
    inp.clock.input(now, None, frames, dir);
    inp.delivered_frames += frames as u64;
    inp.position.observe(now, inp.delivered_frames as f64, dir);
    for piece in data.chunks(inp.scratch.len() * 4) {
        let n = piece.len() / 4 / ch * ch;
        for (s, b) in inp.scratch[..n].iter_mut().zip(piece.chunks_exact(4)) {
            *s = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        if let Some(Ok(mut cb)) = ctx.slots.input.as_ref().map(Mutex::try_lock) {
            cb.process(&inp.scratch[..n]);
        }
    }
}
