//! A small blocking client of PulseAudio's native protocol over a Unix socket.
//!
//! Only the `pulseaudio` crate's `protocol` module is used (commands, replies, tagstructs);
//! the packets are framed here, because playback memblocks need what that crate's reactor
//! never sends: a seek mode (the low byte of the descriptor's flags) and a seek offset (the
//! descriptor's `offset`). That is what lets the device thread rewrite the server's queue
//! (see [`super::rewrite`]).
//!
//! Setup ([`Conn::connect`], [`Conn::request`]) may allocate. The steady state does not:
//! [`Conn::read_packet`] reads into a buffer allocated at connect time, and
//! [`Conn::send_command`] / [`Conn::send_memblock`] encode into another one.

#![allow(unsafe_code)] // libc calls (getuid, poll, eventfd read), each with its SAFETY note

use std::ffi::CString;
use std::io::{BufReader, Cursor, Read, Write};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use pulseaudio::protocol::{self, Command, CommandReply, TagStructReader};

/// Size of a packet descriptor.
pub const DESCRIPTOR_SIZE: usize = protocol::DESCRIPTOR_SIZE;
/// Channel id of control packets.
const CONTROL: u32 = u32::MAX;
/// Largest packet read without growing the receive buffer (the server's memblocks are at
/// most its pool's 64 KiB blocks).
const RX_BYTES: usize = 256 * 1024;
/// Largest memblock or command sent in one packet.
pub const TX_BYTES: usize = 64 * 1024;
/// Longest a read of the rest of a packet or a write may block: a server that stops
/// answering mid-packet is a dead server, and the device thread must not hang on it.
const IO_TIMEOUT: Duration = Duration::from_millis(500);

/// How a memblock moves the server's write index before it is written (`pa_seek_mode_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Seek {
    /// `PA_SEEK_RELATIVE`: from the current write index (plain streaming, offset 0).
    Relative = 0,
    /// `PA_SEEK_ABSOLUTE`: to this byte position of the stream.
    Absolute = 1,
}

/// One packet from the server, borrowed from the connection's receive buffer.
#[derive(Debug)]
pub enum Packet<'a> {
    /// A command or reply; for `Command::Reply` the reply's payload follows in `rest`.
    Control {
        /// Sequence number (a reply carries the request's).
        seq: u32,
        /// The command.
        command: Command,
        /// Bytes after the command tag and sequence number.
        rest: &'a [u8],
    },
    /// Stream data (record streams) on a channel.
    Data {
        /// The stream's channel.
        channel: u32,
        /// The payload.
        data: &'a [u8],
    },
    /// A control packet this client does not understand (skipped).
    Unknown,
}

/// Where the server listens: `PULSE_SERVER` (`unix:/path` or a path), then
/// `$XDG_RUNTIME_DIR/pulse/native`, then `/run/user/<uid>/pulse/native`.
pub fn server_socket() -> Option<PathBuf> {
    if let Ok(server) = std::env::var("PULSE_SERVER") {
        // Several servers may be listed; the first Unix one is used.
        for entry in server.split_whitespace() {
            let path = entry.strip_prefix("unix:").unwrap_or(entry);
            if path.starts_with('/') {
                return Some(PathBuf::from(path));
            }
        }
        return None;
    }
    if let Ok(dir) = std::env::var("XDG_RUNTIME_DIR") {
        return Some(PathBuf::from(dir).join("pulse/native"));
    }
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    Some(PathBuf::from(format!("/run/user/{uid}/pulse/native")))
}

fn cookie() -> Vec<u8> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let candidates = std::env::var_os("PULSE_COOKIE")
        .map(PathBuf::from)
        .into_iter()
        .chain(home.iter().map(|h| h.join(".config/pulse/cookie")))
        .chain(home.iter().map(|h| h.join(".pulse-cookie")));
    for path in candidates {
        if let Ok(bytes) = std::fs::read(path) {
            return bytes;
        }
    }
    // A server with anonymous auth accepts any cookie; one without refuses this one.
    vec![0; 256]
}

fn proto_err(what: &str, e: impl std::fmt::Display) -> String {
    format!("PulseAudio {what}: {e}")
}

/// A connection to a PulseAudio server.
pub struct Conn {
    sock: BufReader<UnixStream>,
    /// The negotiated protocol version.
    pub version: u16,
    next_seq: u32,
    rx: Vec<u8>,
    tx: Box<[u8]>,
    /// Where it connected (for messages).
    pub path: PathBuf,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("path", &self.path)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// Connects, authenticates and names the client.
    ///
    /// # Errors
    /// A message when no server answers or it refuses the client.
    pub fn connect(client_name: &str) -> Result<Self, String> {
        let path = server_socket().ok_or("PULSE_SERVER names no Unix socket")?;
        let stream = UnixStream::connect(&path)
            .map_err(|e| format!("no PulseAudio server at {}: {e}", path.display()))?;
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
            .map_err(|e| proto_err("socket", e))?;
        let mut conn = Self {
            sock: BufReader::with_capacity(64 * 1024, stream),
            version: protocol::MAX_VERSION,
            next_seq: 0,
            rx: vec![0; RX_BYTES],
            tx: vec![0; TX_BYTES + DESCRIPTOR_SIZE].into_boxed_slice(),
            path,
        };
        let auth = protocol::AuthParams {
            version: protocol::MAX_VERSION,
            supports_shm: false,
            supports_memfd: false,
            cookie: cookie(),
        };
        let reply: protocol::AuthReply = conn.request(&Command::Auth(auth))?;
        conn.version = reply.version.min(protocol::MAX_VERSION);
        let mut props = protocol::Props::new();
        props.set(
            protocol::Prop::ApplicationName,
            CString::new(client_name).unwrap_or_default(),
        );
        let _: protocol::SetClientNameReply = conn.request(&Command::SetClientName(props))?;
        Ok(conn)
    }

    /// A connection over an already connected and authenticated socket speaking protocol
    /// `version` (for tests against a fake server, and tools).
    pub fn from_stream(stream: UnixStream, version: u16) -> Self {
        Self {
            sock: BufReader::with_capacity(64 * 1024, stream),
            version,
            next_seq: 0,
            rx: vec![0; RX_BYTES],
            tx: vec![0; TX_BYTES + DESCRIPTOR_SIZE].into_boxed_slice(),
            path: PathBuf::new(),
        }
    }

    /// The socket's file descriptor (for `poll`).
    pub fn fd(&self) -> i32 {
        self.sock.get_ref().as_raw_fd()
    }

    /// Whether a packet (or part of one) is already buffered, so `poll` would not see it.
    pub fn has_buffered(&self) -> bool {
        !self.sock.buffer().is_empty()
    }

    /// Sends a command; returns its sequence number. No allocation for commands without
    /// strings or property lists (the steady state's latency queries).
    ///
    /// # Errors
    /// A message when the socket fails.
    pub fn send_command(&mut self, command: &Command) -> Result<u32, String> {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let n = protocol::encode_command_message(&mut self.tx[..], seq, command, self.version)
            .map_err(|e| proto_err("encode", e))?;
        self.sock
            .get_mut()
            .write_all(&self.tx[..n])
            .map_err(|e| proto_err("write", e))?;
        Ok(seq)
    }

    /// Sends `data` (at most [`TX_BYTES`]) on a playback channel, moving the server's
    /// write index by `seek`/`offset` first. **No allocation.**
    ///
    /// # Errors
    /// A message when the socket fails.
    pub fn send_memblock(
        &mut self,
        channel: u32,
        seek: Seek,
        offset: i64,
        data: &[u8],
    ) -> Result<(), String> {
        let len = data.len().min(TX_BYTES);
        let d = encode_memblock_descriptor(channel, seek, offset, len);
        self.tx[..DESCRIPTOR_SIZE].copy_from_slice(&d);
        self.tx[DESCRIPTOR_SIZE..DESCRIPTOR_SIZE + len].copy_from_slice(&data[..len]);
        self.sock
            .get_mut()
            .write_all(&self.tx[..DESCRIPTOR_SIZE + len])
            .map_err(|e| proto_err("write", e))
    }

    /// Reads one whole packet (blocking until it is complete, at most the I/O timeout per
    /// read). **No allocation** unless a packet is larger than the receive buffer.
    ///
    /// # Errors
    /// A message when the socket fails or closes (the server is gone).
    pub fn read_packet(&mut self) -> Result<Packet<'_>, String> {
        let mut d = [0u8; DESCRIPTOR_SIZE];
        self.sock
            .read_exact(&mut d)
            .map_err(|e| proto_err("read", e))?;
        let length = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize;
        let channel = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
        if length > self.rx.len() {
            if length > protocol::MAX_MEMBLOCKQ_LENGTH {
                return Err(format!("PulseAudio sent a packet of {length} bytes"));
            }
            self.rx.resize(length, 0);
        }
        self.sock
            .read_exact(&mut self.rx[..length])
            .map_err(|e| proto_err("read", e))?;
        let body = &self.rx[..length];
        if channel != CONTROL {
            return Ok(Packet::Data {
                channel,
                data: body,
            });
        }
        let mut cursor = Cursor::new(body);
        match Command::read_tag_prefixed(&mut cursor, self.version) {
            Ok((seq, command)) => {
                let at = usize::try_from(cursor.position()).unwrap_or(length);
                Ok(Packet::Control {
                    seq,
                    command,
                    rest: &body[at.min(length)..],
                })
            }
            Err(_) => Ok(Packet::Unknown),
        }
    }

    /// Sends a command and waits for its reply (setup only: other packets that arrive
    /// meanwhile are dropped).
    ///
    /// # Errors
    /// The server's error, or a message when the socket fails.
    pub fn request<T: CommandReply>(&mut self, command: &Command) -> Result<T, String> {
        let seq = self.send_command(command)?;
        let version = self.version;
        loop {
            match self.read_packet()? {
                Packet::Control {
                    seq: s,
                    command: Command::Reply,
                    rest,
                } if s == seq => {
                    let mut r = rest;
                    let mut ts = TagStructReader::new(&mut r, version);
                    return T::read(&mut ts, version).map_err(|e| proto_err("reply", e));
                }
                Packet::Control {
                    seq: s,
                    command: Command::Error(e),
                    ..
                } if s == seq => return Err(format!("PulseAudio refused: {e:?}")),
                _ => {}
            }
        }
    }
}

/// Parses a reply payload (`rest` of a [`Packet::Control`]).
///
/// # Errors
/// A message when the payload does not parse.
pub fn parse_reply<T: CommandReply>(rest: &[u8], version: u16) -> Result<T, String> {
    let mut r = rest;
    let mut ts = TagStructReader::new(&mut r, version);
    T::read(&mut ts, version).map_err(|e| proto_err("reply", e))
}

/// The 20-byte descriptor of a memblock: length, channel, the seek offset (an `int64`
/// sent as its two's complement) and the seek mode in the low byte of the flags.
pub fn encode_memblock_descriptor(
    channel: u32,
    seek: Seek,
    offset: i64,
    length: usize,
) -> [u8; DESCRIPTOR_SIZE] {
    let mut d = [0u8; DESCRIPTOR_SIZE];
    d[0..4].copy_from_slice(&u32::try_from(length).unwrap_or(u32::MAX).to_be_bytes());
    d[4..8].copy_from_slice(&channel.to_be_bytes());
    d[8..16].copy_from_slice(&offset.to_be_bytes());
    d[16..20].copy_from_slice(&u32::from(seek as u8).to_be_bytes());
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memblock_descriptor_carries_seek_mode_and_offset() {
        let d = encode_memblock_descriptor(3, Seek::Absolute, 96_000, 1920);
        assert_eq!(&d[0..4], &1920u32.to_be_bytes());
        assert_eq!(&d[4..8], &3u32.to_be_bytes());
        assert_eq!(&d[8..16], &96_000i64.to_be_bytes());
        assert_eq!(&d[16..20], &[0, 0, 0, 1]);
        // The crate's own reader sees the same length, channel and offset.
        let desc = protocol::read_descriptor(&mut &d[..]).unwrap();
        assert_eq!((desc.length, desc.channel, desc.offset), (1920, 3, 96_000));
        let plain = encode_memblock_descriptor(3, Seek::Relative, 0, 8);
        assert_eq!(&plain[8..20], &[0; 12]);
    }

    #[test]
    fn server_socket_follows_pulse_server() {
        // Only reads the environment; PULSE_SERVER set by the test process is respected.
        if let Ok(s) = std::env::var("PULSE_SERVER") {
            if let Some(p) = s.strip_prefix("unix:") {
                assert_eq!(server_socket(), Some(PathBuf::from(p)));
            }
        }
    }
}
