//! The native PulseAudio device thread never allocates in its steady state: a fake server
//! on the other end of a socket pair sends requests, record memblocks and timing replies,
//! and an interrupt makes the thread rewrite the queue; the whole loop runs inside
//! `assert_no_alloc`. The fake server also checks what a rewrite sends: one memblock with
//! `PA_SEEK_ABSOLUTE` at read index + sink fill + margin, then plain ones.
#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use assert_no_alloc::{assert_no_alloc, reset_violation_count, violation_count, AllocDisabler};
use duplex_engine::callback::{InputCallback, OutputCallback};
use duplex_engine::capture::capture_channel;
use duplex_engine::cpal_stream::CallbackSlots;
use duplex_engine::device_health::DeviceHealth;
use duplex_engine::playback::playback_channel;
use duplex_engine::pulse::client::{encode_memblock_descriptor, Conn, Seek};
use duplex_engine::pulse::stream::{Context, Device, PlaybackSetup, RecordSetup};
use duplex_engine::stats::SharedStats;
use pulseaudio::protocol::{self, Command};

#[global_allocator]
static ALLOCATOR: AllocDisabler = AllocDisabler;

const RATE: u32 = 48_000;
const FB: usize = 8; // stereo f32
const TLENGTH: u32 = 3840; // 80 ms
const OUT_CH: u32 = 0;
const IN_CH: u32 = 1;
const VERSION: u16 = protocol::MAX_VERSION;

/// What the fake server saw.
#[derive(Default, Debug)]
struct Seen {
    relative_bytes: u64,
    absolute: Vec<(i64, usize)>,
    timing_queries: u32,
    /// Every read index replied.
    reads: Vec<i64>,
    /// The read index replied once the simulated graph pull moved it (PipeWire mode).
    pulled_read: Option<i64>,
}

fn send_command(sock: &mut UnixStream, seq: u32, cmd: &Command) {
    let mut buf = vec![0u8; 1024];
    let n = protocol::encode_command_message(&mut buf[..], seq, cmd, VERSION).unwrap();
    sock.write_all(&buf[..n]).unwrap();
}

/// Bytes one simulated PipeWire graph pull takes: 1024 frames.
const PULL: i64 = 1024 * FB as i64;

/// `sink_usec` 0 plays PipeWire's pulse server: no sink fill reported, and the read index
/// jumps a whole pull, here on the sixth timing query after the interrupt (later than the
/// three tries a server that reports its fill gets).
fn fake_server(
    mut sock: UnixStream,
    rounds: u32,
    interrupt_at: u32,
    go: Arc<AtomicBool>,
    sink_usec: u64,
) -> (Seen, UnixStream) {
    let mut pulled: i64 = 0;
    let mut queries_after_go = 0u32;
    sock.set_read_timeout(Some(Duration::from_millis(30)))
        .unwrap();
    let mut seen = Seen::default();
    let mut write_index: i64 = 0;
    let record: Vec<u8> = (0..960 * FB).map(|i| (i % 7) as u8).collect();
    for round in 0..rounds {
        if round == interrupt_at {
            go.store(true, Relaxed); // the test interrupts now
        }
        // A request for a period, and a period of record data.
        send_command(
            &mut sock,
            u32::MAX,
            &Command::Request(protocol::Request {
                channel: OUT_CH,
                length: 960 * FB as u32,
            }),
        );
        let d = encode_memblock_descriptor(IN_CH, Seek::Relative, 0, record.len());
        sock.write_all(&d).unwrap();
        sock.write_all(&record).unwrap();
        // Read what the client sends until it is quiet for a moment.
        loop {
            let mut desc = [0u8; protocol::DESCRIPTOR_SIZE];
            match sock.read_exact(&mut desc) {
                Ok(()) => {}
                Err(_) => break,
            }
            let len = u32::from_be_bytes(desc[0..4].try_into().unwrap()) as usize;
            let channel = u32::from_be_bytes(desc[4..8].try_into().unwrap());
            let offset = i64::from_be_bytes(desc[8..16].try_into().unwrap());
            let seek = desc[19];
            let mut body = vec![0u8; len];
            sock.read_exact(&mut body).unwrap();
            if channel == u32::MAX {
                let (seq, cmd) =
                    Command::read_tag_prefixed(&mut std::io::Cursor::new(&body[..]), VERSION)
                        .unwrap();
                if let Command::GetPlaybackLatency(_) = cmd {
                    seen.timing_queries += 1;
                    if go.load(Relaxed) && sink_usec == 0 {
                        queries_after_go += 1;
                        if queries_after_go == 6 {
                            pulled += PULL;
                        }
                    }
                    let read_offset =
                        (write_index - i64::from(TLENGTH) * FB as i64 / 2).max(0) + pulled;
                    seen.reads.push(read_offset);
                    if pulled > 0 && seen.pulled_read.is_none() {
                        seen.pulled_read = Some(read_offset);
                    }
                    let reply = protocol::PlaybackLatency {
                        sink_usec,
                        source_usec: 0,
                        playing: true,
                        local_time: SystemTime::now(),
                        remote_time: SystemTime::now(),
                        write_offset: write_index,
                        read_offset,
                        underrun_for: 0,
                        playing_for: 1,
                    };
                    let mut buf = vec![0u8; 1024];
                    let n =
                        protocol::encode_reply_message(&mut buf[..], seq, &reply, VERSION).unwrap();
                    sock.write_all(&buf[..n]).unwrap();
                }
            } else if seek == 1 {
                seen.absolute.push((offset, len));
            } else {
                seen.relative_bytes += len as u64;
                write_index += len as i64;
            }
        }
    }
    // The socket stays open until the device is stopped: a closed server is the error
    // path (it builds a message), not the steady state.
    (seen, sock)
}

#[test]
fn the_pulse_device_thread_never_allocates() {
    let seen = run_device(5_000);
    // The rewrite lands at a reply's read index + sink fill (5 ms) + margin (2 ms).
    let (offset, _) = seen.absolute[0];
    assert!(
        seen.reads.contains(&(offset - (240 + 96) * FB as i64)),
        "{seen:?}"
    );
}

#[test]
fn on_a_server_without_sink_fill_the_rewrite_waits_for_the_pull_and_never_allocates() {
    let seen = run_device(0);
    // Not at the read index of the first replies (the graph could take that block at any
    // moment) but just after the pull moved it: moved read index + margin (2 ms).
    let pulled = seen.pulled_read.expect("the read index moved");
    assert_eq!(seen.absolute[0].0, pulled + 96 * FB as i64, "{seen:?}");
}

/// Runs the device thread against the fake server inside `assert_no_alloc`; checks what
/// every case shares and returns what the server saw.
fn run_device(sink_usec: u64) -> Seen {
    reset_violation_count();
    let stats = Arc::new(SharedStats::default());
    let (mut producer, renderer) =
        playback_channel(RATE, RATE as usize * 4, 0, 240, Arc::clone(&stats)).unwrap();
    let out_cb = OutputCallback::new(renderer, 2, RATE, Arc::clone(&stats));
    let (writer, _reader) =
        capture_channel(RATE, RATE as usize * 4, 20, Arc::clone(&stats)).unwrap();
    let in_cb = InputCallback::new(writer, 2, RATE, Arc::clone(&stats));
    let slots = Arc::new(CallbackSlots::new(Some(out_cb), Some(in_cb), false));
    slots.set_generation(1);
    let health = Arc::new(DeviceHealth::default());
    // Plenty of model audio queued, so the rewrite has played frames to take back.
    let tone: Vec<i16> = (0..48_000).map(|i| ((i % 48) as i16 - 24) * 500).collect();
    producer.try_play(&tone).unwrap();

    let (client, server) = UnixStream::pair().unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let conn = Conn::from_stream(client, VERSION);
    let stop = Arc::new(AtomicBool::new(false));
    let ctx = Context {
        slots: Arc::clone(&slots),
        health: Arc::clone(&health),
        stats: Arc::clone(&stats),
        generation: 1,
    };
    let play = PlaybackSetup {
        channel: OUT_CH,
        requested_bytes: TLENGTH * FB as u32,
        channels: 2,
        rate: RATE,
        tlength_frames: TLENGTH,
        fade_frames: 240,
    };
    let rec = RecordSetup {
        channel: IN_CH,
        channels: 2,
        rate: RATE,
        maxlength_frames: RATE * 2,
    };
    let mut device = Device::new(conn, Some(play), Some(rec), ctx, Arc::clone(&stop));
    let go = Arc::new(AtomicBool::new(false));
    let go_s = Arc::clone(&go);
    let fake = std::thread::spawn(move || fake_server(server, 40, 20, go_s, sink_usec));
    let runner = std::thread::spawn(move || {
        assert_no_alloc(|| device.run());
        violation_count()
    });
    // The interrupt comes from the "Python" side while the device runs.
    while !go.load(Relaxed) {
        std::thread::sleep(Duration::from_millis(1));
    }
    producer.interrupt();
    let (seen, sock) = fake.join().unwrap();
    stop.store(true, Relaxed);
    let violations = runner.join().unwrap();
    drop(sock);
    assert_eq!(violations, 0, "the device thread allocated");
    assert!(seen.timing_queries >= 5, "{seen:?}");
    // The rewrite: one absolute memblock (where it lands is the caller's check).
    assert_eq!(seen.absolute.len(), 1, "{seen:?}");
    let (offset, len) = seen.absolute[0];
    assert_eq!(offset % FB as i64, 0);
    assert!(len > 0);
    assert!(stats.device_rewrites.load(Relaxed) == 1);
    // Capture reached the input callback.
    assert!(stats.frames_captured.load(Relaxed) >= 960 * 30);
    // The position clock ran on the device thread, counting included: the fake server
    // sends 20 ms of capture per round of at least 30 ms, so capture falls behind the wall
    // clock. The frame clock cannot see that (its 2 s record buffer never overflows here).
    assert!(
        health.input.gaps.load(Relaxed) > 0,
        "the position clock counted no input loss"
    );
    seen
}
