//! The native PulseAudio host: the engine's own client of PulseAudio's native protocol
//! (and of pipewire-pulse), behind the same interface as the cpal streams.
//!
//! Why a host of our own rather than cpal's ALSA host through the pulse plugin: that path
//! glitched in full duplex (62 gaps a minute at an 80 ms buffer on an idle machine; the
//! plugin's I/O thread runs at normal priority), and its flush cannot take back what the
//! server already holds (barge-in 62-71 ms at 80 ms). Here one device thread, promoted to
//! real time, serves both streams of one connection, and an interrupt rewrites the server's
//! queue ([`rewrite`]). See the README's design notes.
//!
//! * [`client`]: a small blocking protocol client (framing, seek modes).
//! * [`stream`]: the device thread. **Real time.**
//! * [`rewrite`]: the flush below the ring (pure parts, tested).
//!
//! Devices: a sink for output and a source for input, by name (`pulse:<name>` or the bare
//! name) or the server's defaults. The server converts rate and channels; streams are
//! opened as 32-bit float at the sink's and source's own rate and channel count.

pub mod client;
pub mod rewrite;
pub mod stream;

use std::ffi::CString;
use std::sync::Arc;

use pulseaudio::protocol::stream::{BufferAttr, StreamFlags};
use pulseaudio::protocol::{self, Command};

use crate::cpal_device::{CpalConfig, DeviceInfo, DeviceSelector, Host};
use crate::cpal_stream::{CallbackSlots, CpalStreams, Granted};
use crate::device_health::DeviceHealth;
use crate::error::{EngineError, Result};
use crate::stats::SharedStats;
use client::Conn;

const DEFAULT_NAME_OUT: &std::ffi::CStr = protocol::DEFAULT_SINK;
const DEFAULT_NAME_IN: &std::ffi::CStr = protocol::DEFAULT_SOURCE;

/// The name the engine gives itself on the server.
const CLIENT_NAME: &str = "duplex";
/// Fade of a rewrite, in milliseconds (the ring's default fade).
pub const REWRITE_FADE_MS: f64 = 5.0;

/// Whether streams of `host` open through this module: always for [`Host::Pulse`], for
/// [`Host::Auto`] when a server answers.
pub fn chosen(host: Host) -> bool {
    match host {
        Host::Pulse => true,
        Host::Alsa => false,
        Host::Auto => server_answers(),
    }
}

/// Whether a PulseAudio server (or pipewire-pulse) answers here.
pub fn server_answers() -> bool {
    Conn::connect(CLIENT_NAME).is_ok()
}

/// One direction resolved on the server: its name, rate and channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Sink or source name on the server.
    pub name: String,
    /// Rate in Hz.
    pub rate: u32,
    /// Channels.
    pub channels: u16,
    /// Opened as the server's default (no name sent), so the server moves the stream when
    /// its default sink or source changes (a headset plugged in).
    pub follow_default: bool,
}

/// Both directions of a [`CpalConfig`] on the server, and the buffer to ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct PulseDevices {
    /// The sink (None = output disabled).
    pub output: Option<Endpoint>,
    /// The source (None = input disabled).
    pub input: Option<Endpoint>,
    /// Playback buffer to ask for (tlength), in milliseconds.
    pub buffer_ms: f64,
    /// Frames per period asked for (minreq, fragsize) at the output's rate, if given.
    pub period_frames: Option<u32>,
    /// Fade of a rewrite, in milliseconds.
    pub fade_ms: f64,
}

fn dev_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Device(format!(
        "{e}; is a PulseAudio server (or pipewire-pulse) running? host='alsa' uses ALSA instead"
    ))
}

fn wanted_name(sel: &DeviceSelector, default: &std::ffi::CStr) -> Result<Option<CString>> {
    match sel {
        DeviceSelector::Disabled => Ok(None),
        DeviceSelector::Default => Ok(Some(default.to_owned())),
        DeviceSelector::Name(n) => {
            let bare = n.strip_prefix("pulse:").unwrap_or(n);
            CString::new(bare)
                .map(Some)
                .map_err(|_| EngineError::InvalidInput(format!("bad device name '{n}'")))
        }
        DeviceSelector::Index(i) => {
            let all = crate::cpal_device::list_devices()?;
            match all.get(*i) {
                Some(d) if d.host == "pulse" => {
                    let bare = d.id.strip_prefix("pulse:").unwrap_or(&d.id);
                    Ok(Some(CString::new(bare).unwrap_or_default()))
                }
                _ => Err(EngineError::UnknownDevice(format!(
                    "device {i} is not a PulseAudio sink or source; with host='pulse' pick one \
                     whose host is pulse in duplex.devices(), or a name"
                ))),
            }
        }
    }
}

/// Looks up the sink and source a config asks for.
///
/// # Errors
/// [`EngineError::Device`] when no server answers; [`EngineError::UnknownDevice`] when it
/// has no such sink or source.
pub fn resolve(config: &CpalConfig, fade_ms: f64) -> Result<PulseDevices> {
    let mut conn = Conn::connect(CLIENT_NAME).map_err(dev_err)?;
    let unknown = |what: &str, name: &CString, e: String| {
        EngineError::UnknownDevice(format!(
            "PulseAudio has no {what} '{}' ({e}); see duplex.devices()",
            name.to_string_lossy()
        ))
    };
    // One sink or source: what the server says of it, at the rate the config asks for.
    let endpoint = |name: &CString, found: &CString, spec: &protocol::SampleSpec| Endpoint {
        name: found.to_string_lossy().into_owned(),
        rate: config.sample_rate.unwrap_or(spec.sample_rate),
        channels: u16::from(spec.channels.max(1)),
        follow_default: name.as_c_str() == DEFAULT_NAME_OUT || name.as_c_str() == DEFAULT_NAME_IN,
    };
    let output = match wanted_name(&config.output, protocol::DEFAULT_SINK)? {
        None => None,
        Some(name) => {
            let info: protocol::SinkInfo = conn
                .request(&Command::GetSinkInfo(protocol::GetSinkInfo {
                    index: None,
                    name: Some(name.clone()),
                }))
                .map_err(|e| unknown("sink", &name, e))?;
            Some(endpoint(&name, &info.name, &info.sample_spec))
        }
    };
    let input = match wanted_name(&config.input, protocol::DEFAULT_SOURCE)? {
        None => None,
        Some(name) => {
            let info: protocol::SourceInfo = conn
                .request(&Command::GetSourceInfo(protocol::GetSourceInfo {
                    index: None,
                    name: Some(name.clone()),
                }))
                .map_err(|e| unknown("source", &name, e))?;
            Some(endpoint(&name, &info.name, &info.sample_spec))
        }
    };
    let rate = output
        .as_ref()
        .or(input.as_ref())
        .map_or(48_000, |e| e.rate);
    Ok(PulseDevices {
        output,
        input,
        buffer_ms: config.buffer_ms(rate, Host::Pulse),
        period_frames: config.period_frames,
        fade_ms,
    })
}

/// The server's sinks and sources as devices of host `pulse` (ids `pulse:<name>`), or
/// nothing when no server answers.
pub fn list_devices(first_index: usize) -> Vec<DeviceInfo> {
    let Ok(mut conn) = Conn::connect(CLIENT_NAME) else {
        return Vec::new();
    };
    let server: Option<protocol::ServerInfo> = conn.request(&Command::GetServerInfo).ok();
    let default_sink = server
        .as_ref()
        .and_then(|s| s.default_sink_name.as_ref())
        .map(|n| n.to_string_lossy().into_owned());
    let default_source = server
        .as_ref()
        .and_then(|s| s.default_source_name.as_ref())
        .map(|n| n.to_string_lossy().into_owned());
    let sinks: protocol::SinkInfoList = conn.request(&Command::GetSinkInfoList).unwrap_or_default();
    let sources: protocol::SourceInfoList = conn
        .request(&Command::GetSourceInfoList)
        .unwrap_or_default();
    let mut out = Vec::new();
    let describe = |name: &CString, desc: &Option<CString>| {
        desc.as_ref()
            .map_or_else(|| name.to_string_lossy(), |d| d.to_string_lossy())
            .into_owned()
    };
    // Sinks first, then sources; a device's index is its place in the whole list.
    let entries = sinks
        .iter()
        .map(|s| (&s.name, &s.description, &s.sample_spec, true))
        .chain(sources.iter().map(|s| (&s.name, &s.description, &s.sample_spec, false)));
    for (index, (raw_name, description, spec, is_sink)) in entries.enumerate() {
        let name = raw_name.to_string_lossy().into_owned();
        let channels = u16::from(spec.channels);
        let default = if is_sink { &default_sink } else { &default_source };
        let is_default = default.as_deref() == Some(name.as_str());
        out.push(DeviceInfo {
            index: first_index + index,
            id: format!("pulse:{name}"),
            name: describe(raw_name, description),
            host: "pulse".into(),
            input_channels: if is_sink { 0 } else { channels },
            output_channels: if is_sink { channels } else { 0 },
            default_rate_hz: spec.sample_rate,
            is_default_input: !is_sink && is_default,
            is_default_output: is_sink && is_default,
        });
    }
    out
}

fn channel_map(channels: u16) -> protocol::ChannelMap {
    match channels {
        1 => protocol::ChannelMap::mono(),
        2 => protocol::ChannelMap::stereo(),
        n => {
            // Rare here (null sinks and desktops are stereo); the server remixes.
            let mut map = protocol::ChannelMap::default();
            for _ in 0..n.min(32) {
                let _ = map.push(protocol::ChannelPosition::Mono);
            }
            map
        }
    }
}

fn ms_bytes(ms: f64, rate: u32, frame_bytes: u32) -> u32 {
    ((ms * f64::from(rate) / 1000.0).round() as u32).max(1) * frame_bytes
}

/// Connects and starts the streams of `generation` (made current first, as cpal's are).
///
/// # Errors
/// [`EngineError::Device`] when the server does not answer or refuses a stream.
pub fn start_streams(
    devices: &PulseDevices,
    slots: &Arc<CallbackSlots>,
    health: &Arc<DeviceHealth>,
    stats: &Arc<SharedStats>,
    generation: u64,
) -> Result<CpalStreams> {
    slots.set_generation(generation);
    let mut conn = Conn::connect(CLIENT_NAME).map_err(dev_err)?;
    let mut granted = Granted {
        host: "pulse",
        ..Granted::default()
    };
    let mut rec = None;
    let mut play = None;
    // Record first: the playback stream's first Request must not arrive while another
    // reply is awaited (setup drops unrelated packets).
    if let Some(inp) = devices.input.as_ref() {
        let fb = 4 * u32::from(inp.channels);
        let period = devices.period_frames.map_or_else(
            || ms_bytes(devices.buffer_ms / 4.0, inp.rate, fb),
            |p| p * fb,
        );
        let reply: protocol::CreateRecordStreamReply = conn
            .request(&Command::CreateRecordStream(protocol::RecordStreamParams {
                sample_spec: protocol::SampleSpec {
                    format: protocol::SampleFormat::Float32Le,
                    channels: inp.channels as u8,
                    sample_rate: inp.rate,
                },
                channel_map: channel_map(inp.channels),
                source_name: (!inp.follow_default)
                    .then(|| CString::new(inp.name.clone()).unwrap_or_default()),
                buffer_attr: BufferAttr {
                    max_length: ms_bytes(2000.0, inp.rate, fb),
                    fragment_size: period,
                    ..BufferAttr::default()
                },
                flags: StreamFlags {
                    adjust_latency: true,
                    ..StreamFlags::default()
                },
                cvolume: Some(protocol::ChannelVolume::norm(inp.channels as u8)),
                ..Default::default()
            }))
            .map_err(|e| dev_err(format!("cannot open source '{}': {e}", inp.name)))?;
        granted.input_device = format!("pulse:{}", inp.name);
        granted.input_period_frames = reply.buffer_attr.fragment_size / fb;
        rec = Some(stream::RecordSetup {
            channel: reply.channel,
            channels: inp.channels,
            rate: inp.rate,
            maxlength_frames: reply.buffer_attr.max_length / fb,
        });
    }
    if let Some(out) = devices.output.as_ref() {
        let fb = 4 * u32::from(out.channels);
        let tlength = ms_bytes(devices.buffer_ms, out.rate, fb);
        let minreq = devices
            .period_frames
            .map_or_else(
                || ms_bytes(devices.buffer_ms / 4.0, out.rate, fb),
                |p| p * fb,
            )
            .min(tlength / 2);
        let reply: protocol::CreatePlaybackStreamReply = conn
            .request(&Command::CreatePlaybackStream(
                protocol::PlaybackStreamParams {
                    sample_spec: protocol::SampleSpec {
                        format: protocol::SampleFormat::Float32Le,
                        channels: out.channels as u8,
                        sample_rate: out.rate,
                    },
                    channel_map: channel_map(out.channels),
                    sink_name: (!out.follow_default)
                        .then(|| CString::new(out.name.clone()).unwrap_or_default()),
                    buffer_attr: BufferAttr {
                        max_length: u32::MAX,
                        target_length: tlength,
                        // Start (and restart after an underrun) as soon as a period is queued.
                        pre_buffering: minreq,
                        minimum_request_length: minreq,
                        ..BufferAttr::default()
                    },
                    cvolume: Some(protocol::ChannelVolume::norm(out.channels as u8)),
                    ..Default::default()
                },
            ))
            .map_err(|e| dev_err(format!("cannot open sink '{}': {e}", out.name)))?;
        granted.output_device = format!("pulse:{}", out.name);
        granted.output_period_frames = reply.buffer_attr.minimum_request_length / fb;
        granted.buffer_frames_requested = tlength / fb;
        granted.buffer_frames_granted = reply.buffer_attr.target_length / fb;
        play = Some(stream::PlaybackSetup {
            channel: reply.channel,
            requested_bytes: reply.requested_bytes,
            channels: out.channels,
            rate: out.rate,
            tlength_frames: reply.buffer_attr.target_length / fb,
            fade_frames: ((devices.fade_ms * f64::from(out.rate) / 1000.0).round() as u32).max(1),
        });
    }
    if granted.buffer_frames_requested == 0 {
        if let Some(inp) = devices.input.as_ref() {
            granted.buffer_frames_requested =
                (devices.buffer_ms * f64::from(inp.rate) / 1000.0).round() as u32;
        }
    }
    let ctx = stream::Context {
        slots: Arc::clone(slots),
        health: Arc::clone(health),
        stats: Arc::clone(stats),
        generation,
    };
    let thread = stream::spawn(conn, play, rec, ctx).map_err(EngineError::Device)?;
    Ok(CpalStreams::native(Box::new(thread), granted, generation))
}
