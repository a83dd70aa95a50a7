//! Real devices through cpal (the ALSA host on Linux; PulseAudio/PipeWire reach it through
//! ALSA's `pulse`/`pipewire` plugins). Every cpal call is in this file, so cpal's API changes
//! touch one place.
//!
//! Devices are opened at their own rate, channel count and sample format; the engine converts.
//! The device buffer follows [`Latency`]; the streams themselves are built in
//! [`crate::cpal_stream`] and kept alive by [`crate::supervisor`].

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use cpal::traits::{DeviceTrait, HostTrait};
use cpal::{SampleFormat, StreamConfig, SupportedBufferSize, SupportedStreamConfig};

use crate::callback::MAX_BLOCK_FRAMES;
use crate::error::{EngineError, Result};
use crate::stats::SharedStats;

/// Which device to open for one direction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeviceSelector {
    /// The host's default device.
    #[default]
    Default,
    /// A device whose id or name equals this, or (if only one does) contains it.
    Name(String),
    /// The device at this position in [`list_devices`].
    Index(usize),
    /// Do not open this direction.
    Disabled,
}

/// How much audio the device buffer holds: the trade between robustness and delay, in the
/// spirit of python-sounddevice's `latency`.
///
/// cpal asks the host for two periods of half this each; what the host really grants is
/// read back and reported (PulseAudio's ALSA plugin insists on three periods, so it splits
/// the same buffer into thirds). The default is [`DEFAULT_LATENCY`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    /// 20 ms: the lowest delay that still works through a sound server on an idle machine.
    Low,
    /// The robust default for the host: 150 ms on the native PulseAudio host (whose
    /// interrupts take back what the server holds, so the bigger buffer costs barge-in
    /// nothing), 80 ms on ALSA (where an interrupt lets the device buffer play out).
    /// Survives a machine whose cores are busy with other work, in full duplex.
    High,
    /// This many milliseconds of device buffer (4..=1000).
    Ms(f64),
}

/// The device buffer the engine asks for unless told otherwise: [`Latency::High`], 150 ms on
/// the native PulseAudio host and 80 ms on ALSA.
///
/// Chosen from gaps a listener hears, measured with an independent recorder (`pacat` on a
/// PulseAudio 16.1 null sink's monitor, gaps = runs of >= 5 ms of near-silence inside a
/// continuous tone), full duplex, gaps per minute (benches/RESULTS.md has the runs):
///
/// | load | ALSA 20 ms | ALSA 80 ms | ALSA 150 ms | native 80 ms | native 150 ms |
/// |---|---|---|---|---|---|
/// | idle | 22.5 | 0-18 | 0-40 | 0 | 0 |
/// | both cores busy with other processes | 656 | 22-147 | 0-12 | 0-12 | 0 |
/// | Python holding the GIL 50 of every 100 ms | 22.4 | 0-130 | 0-26 | 0-6 | 0 |
/// | both loads | 630 | 0-152 | 0-68 | 0-6 | 0 |
///
/// On the native host 150 ms is the only buffer without gaps in every case, and its
/// interrupts rewrite the server's queue, so barge-in stays at 8-15 ms whatever the buffer.
/// On ALSA an interrupt lets the device buffer play out (67 ms at 80 ms, 128 ms at 150 ms),
/// so 80 ms is kept there. The extra delay is small against a speech model's 500+ ms
/// response time.
pub const DEFAULT_LATENCY: Latency = Latency::High;

impl Default for Latency {
    fn default() -> Self {
        DEFAULT_LATENCY
    }
}

impl Latency {
    /// The device buffer in milliseconds on `host` ([`Host::Pulse`] or [`Host::Alsa`];
    /// [`Host::Auto`] counts as ALSA, the host it falls back to).
    pub fn buffer_ms(self, host: Host) -> f64 {
        match (self, host) {
            (Latency::Low, _) => LOW_LATENCY_MS,
            (Latency::High, Host::Pulse) => HIGH_LATENCY_NATIVE_PULSE_MS,
            (Latency::High, _) => HIGH_LATENCY_MS,
            (Latency::Ms(ms), _) => ms,
        }
    }

    /// Parses `"low"`, `"high"` or a number of milliseconds.
    ///
    /// # Errors
    /// [`EngineError::InvalidInput`] for anything else or an out-of-range number.
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "low" => Ok(Latency::Low),
            "high" => Ok(Latency::High),
            other => other
                .parse::<f64>()
                .map_err(|_| ())
                .and_then(|ms| Latency::from_ms(ms).map_err(|_| ()))
                .map_err(|()| {
                    EngineError::InvalidInput(format!(
                        "latency must be 'low', 'high' or milliseconds of device buffer \
                         (4-1000), got '{text}'"
                    ))
                }),
        }
    }

    /// A buffer of `ms` milliseconds.
    ///
    /// # Errors
    /// [`EngineError::InvalidInput`] outside 4..=1000 ms.
    pub fn from_ms(ms: f64) -> Result<Self> {
        if ms.is_finite() && (4.0..=1000.0).contains(&ms) {
            Ok(Latency::Ms(ms))
        } else {
            Err(EngineError::InvalidInput(format!(
                "latency must be 4-1000 ms of device buffer ('low' = {LOW_LATENCY_MS}, 'high' = \
                 {HIGH_LATENCY_NATIVE_PULSE_MS} on the native PulseAudio host and \
                 {HIGH_LATENCY_MS} on ALSA), got {ms}"
            )))
        }
    }
}

/// Device buffer of [`Latency::Low`], in milliseconds.
pub const LOW_LATENCY_MS: f64 = 20.0;
/// Device buffer of [`Latency::High`] on ALSA, in milliseconds.
pub const HIGH_LATENCY_MS: f64 = 80.0;
/// Device buffer of [`Latency::High`] on the native PulseAudio host, in milliseconds.
pub const HIGH_LATENCY_NATIVE_PULSE_MS: f64 = 150.0;

/// Which audio system real devices are opened through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Host {
    /// cpal's ALSA host (with a sound server, through ALSA's pulse/pipewire plugin).
    Alsa,
    /// The engine's own PulseAudio client (`crate::pulse`; pipewire-pulse works too): one
    /// connection, a real-time device thread, and interrupts that rewrite the server's queue.
    Pulse,
    /// [`Host::Pulse`] where a PulseAudio server answers, else [`Host::Alsa`]: the default
    /// (the native host had fewer gaps and a 5-8x faster barge-in than ALSA-over-pulse in
    /// the same run; benches/RESULTS.md, "The native PulseAudio host").
    #[default]
    Auto,
}

impl Host {
    /// Parses `"auto"`, `"pulse"` or `"alsa"`.
    ///
    /// # Errors
    /// [`EngineError::InvalidInput`] for anything else.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "alsa" => Ok(Host::Alsa),
            "pulse" => Ok(Host::Pulse),
            "auto" => Ok(Host::Auto),
            other => Err(EngineError::InvalidInput(format!(
                "host must be 'auto', 'pulse' or 'alsa', got '{other}'"
            ))),
        }
    }

    /// `"alsa"`, `"pulse"` or `"auto"`.
    pub fn name(self) -> &'static str {
        match self {
            Host::Alsa => "alsa",
            Host::Pulse => "pulse",
            Host::Auto => "auto",
        }
    }
}

/// Settings for real devices.
#[derive(Debug, Clone, PartialEq)]
pub struct CpalConfig {
    /// The audio system to open devices through (default [`Host::Auto`]).
    pub host: Host,
    /// Input device.
    pub input: DeviceSelector,
    /// Output device.
    pub output: DeviceSelector,
    /// Ask both devices for this rate instead of their default.
    pub sample_rate: Option<u32>,
    /// Frames per callback to ask for; overrides the latency (the buffer is two of these).
    pub period_frames: Option<u32>,
    /// Device buffer to ask for (default [`DEFAULT_LATENCY`]); ignored if `period_frames`
    /// is set.
    pub latency: Latency,
    /// Promote the device threads to real-time priority where the system allows it (rtkit
    /// or `RLIMIT_RTPRIO`); where it does not, they stay at normal priority and the stats
    /// say so.
    pub realtime: bool,
}

impl Default for CpalConfig {
    fn default() -> Self {
        Self {
            host: Host::default(),
            input: DeviceSelector::Default,
            output: DeviceSelector::Default,
            sample_rate: None,
            period_frames: None,
            latency: DEFAULT_LATENCY,
            realtime: true,
        }
    }
}

impl CpalConfig {
    /// Device buffer size asked for.
    pub fn latency(&self) -> Latency {
        self.latency
    }
    /// Whether the device threads are promoted to real-time priority where allowed.
    pub fn realtime(&self) -> bool {
        self.realtime
    }
    /// The device buffer asked for in milliseconds at `rate` Hz on `host`: two periods if
    /// `period_frames` is set, else the latency's.
    pub fn buffer_ms(&self, rate: u32, host: Host) -> f64 {
        self.period_frames.map_or(self.latency.buffer_ms(host), |p| {
            2000.0 * f64::from(p) / f64::from(rate.max(1))
        })
    }
}

/// One device as [`list_devices`] reports it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeviceInfo {
    /// Position in the list; usable as [`DeviceSelector::Index`].
    pub index: usize,
    /// Stable id, e.g. `alsa:default`.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// Host (audio API) name.
    pub host: String,
    /// Input channels of the default input config (0 = no input).
    pub input_channels: u16,
    /// Output channels of the default output config (0 = no output).
    pub output_channels: u16,
    /// Default sample rate in Hz (output if it has one, else input).
    pub default_rate_hz: u32,
    /// Whether this is the host's default input device.
    pub is_default_input: bool,
    /// Whether this is the host's default output device.
    pub is_default_output: bool,
}

/// Keeps alsa-lib's messages ("ALSA lib pcm.c: Unknown PCM ...") off stderr while this
/// thread probes devices; the errors still come back to us as `Err` values. Installing the
/// handler again replaces (and frees) the previous message buffer.
fn quiet_alsa() {
    #[cfg(target_os = "linux")]
    let _ = alsa::Output::local_error_handler();
}

/// Whether a JACK server runs. Probing ALSA's `jack` plugin without one makes libjack print
/// to stderr (which no ALSA handler can silence) and leave files in /dev/shm, so it is only
/// probed when there is a server to find.
fn jack_server_running() -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|p| {
        std::fs::read_to_string(p.path().join("comm"))
            .is_ok_and(|comm| matches!(comm.trim(), "jackd" | "jackdbus" | "pipewire"))
    })
}

fn device_id(device: &cpal::Device) -> String {
    device.id().map(|id| id.to_string()).unwrap_or_default()
}

fn device_name(device: &cpal::Device) -> String {
    device
        .description()
        .map(|d| d.name().to_string())
        .unwrap_or_else(|_| device_id(device))
}

/// Lists the devices of the default host, then (where a PulseAudio server answers) its
/// sinks and sources as devices of host `pulse` (ids `pulse:<name>`). Works with or without
/// a sound server or card: with neither, ALSA still lists its configured PCMs (`null`,
/// `default`, ...), which may fail to open.
///
/// # Errors
/// [`EngineError::Device`] if the host cannot enumerate at all.
pub fn list_devices() -> Result<Vec<DeviceInfo>> {
    quiet_alsa();
    let host = cpal::default_host();
    let default_in = host.default_input_device().map(|d| device_id(&d));
    let default_out = host.default_output_device().map(|d| device_id(&d));
    let devices = host
        .devices()
        .map_err(|e| EngineError::Device(format!("cannot list audio devices: {e}")))?;
    let probe_jack = jack_server_running();
    let mut infos = Vec::new();
    for (index, device) in devices.enumerate() {
        let id = device_id(&device);
        let probe = probe_jack || id != "alsa:jack";
        let input = probe.then(|| device.default_input_config().ok()).flatten();
        let output = probe.then(|| device.default_output_config().ok()).flatten();
        infos.push(DeviceInfo {
            index,
            name: device_name(&device),
            host: host.id().name().to_string(),
            input_channels: input.as_ref().map_or(0, |c| c.channels()),
            output_channels: output.as_ref().map_or(0, |c| c.channels()),
            default_rate_hz: output
                .as_ref()
                .or(input.as_ref())
                .map_or(0, |c| c.sample_rate()),
            is_default_input: default_in.as_deref() == Some(id.as_str()),
            is_default_output: default_out.as_deref() == Some(id.as_str()),
            id,
        });
    }
    // The sinks and sources of a PulseAudio server, for host "pulse" (none without one).
    #[cfg(target_os = "linux")]
    {
        let first = infos.len();
        infos.extend(crate::pulse::list_devices(first));
    }
    Ok(infos)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Input,
    Output,
}

impl Direction {
    fn word(self) -> &'static str {
        match self {
            Direction::Input => "input",
            Direction::Output => "output",
        }
    }
}

fn find_device(selector: &DeviceSelector, dir: Direction) -> Result<Option<cpal::Device>> {
    let host = cpal::default_host();
    let no_default = || {
        EngineError::Device(format!(
            "no default {} device: there is no sound card or sound server here; start \
             PulseAudio/PipeWire, pick a device from duplex.devices(), or use the virtual backend",
            dir.word()
        ))
    };
    let all = || -> Result<Vec<cpal::Device>> {
        Ok(host
            .devices()
            .map_err(|e| EngineError::Device(format!("cannot list audio devices: {e}")))?
            .collect())
    };
    match selector {
        DeviceSelector::Disabled => Ok(None),
        DeviceSelector::Default => match dir {
            Direction::Input => host.default_input_device().map(Some).ok_or_else(no_default),
            Direction::Output => host
                .default_output_device()
                .map(Some)
                .ok_or_else(no_default),
        },
        DeviceSelector::Index(i) => {
            let devices = all()?;
            let count = devices.len();
            devices.into_iter().nth(*i).map(Some).ok_or_else(|| {
                EngineError::UnknownDevice(format!(
                    "no audio device at index {i}: there are {count} (0..{count}); see duplex.devices()"
                ))
            })
        }
        DeviceSelector::Name(name) => {
            let devices = all()?;
            let wanted = name.to_lowercase();
            if let Some(pos) = devices.iter().position(|d| {
                device_id(d).to_lowercase() == wanted || device_name(d).to_lowercase() == wanted
            }) {
                return Ok(devices.into_iter().nth(pos));
            }
            let matching: Vec<usize> = devices
                .iter()
                .enumerate()
                .filter(|(_, d)| {
                    device_id(d).to_lowercase().contains(&wanted)
                        || device_name(d).to_lowercase().contains(&wanted)
                })
                .map(|(i, _)| i)
                .collect();
            match matching.as_slice() {
                [one] => Ok(devices.into_iter().nth(*one)),
                [] => Err(EngineError::UnknownDevice(format!(
                    "no audio device named '{name}'; see duplex.devices() for the names and indexes"
                ))),
                many => Err(EngineError::UnknownDevice(format!(
                    "'{name}' matches {} devices ({}); give the full id or an index",
                    many.len(),
                    many.iter()
                        .map(|&i| device_id(&devices[i]))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            }
        }
    }
}

fn choose_config(
    device: &cpal::Device,
    dir: Direction,
    rate: Option<u32>,
) -> Result<SupportedStreamConfig> {
    let open_err = |e: cpal::Error| {
        EngineError::Device(format!(
            "cannot open {} device '{}': {e}; is a sound server running? (duplex.devices() lists \
             what exists; the virtual backend needs no sound card)",
            dir.word(),
            device_id(device)
        ))
    };
    let default = match dir {
        Direction::Input => device.default_input_config(),
        Direction::Output => device.default_output_config(),
    }
    .map_err(open_err)?;
    let Some(rate) = rate else {
        return Ok(default);
    };
    if default.sample_rate() == rate {
        return Ok(default);
    }
    let ranges: Vec<_> = match dir {
        Direction::Input => device.supported_input_configs().map(|c| c.collect()),
        Direction::Output => device.supported_output_configs().map(|c| c.collect()),
    }
    .map_err(open_err)?;
    let fits = |r: &cpal::SupportedStreamConfigRange| {
        r.min_sample_rate() <= rate && rate <= r.max_sample_rate()
    };
    // Prefer the default's format and channels, then anything that offers the rate.
    ranges
        .iter()
        .filter(|r| fits(r))
        .max_by_key(|r| {
            (
                r.sample_format() == default.sample_format(),
                r.channels() == default.channels(),
            )
        })
        .map(|r| r.with_sample_rate(rate))
        .ok_or_else(|| {
            let offered: Vec<String> = ranges
                .iter()
                .map(|r| format!("{}-{} Hz", r.min_sample_rate(), r.max_sample_rate()))
                .collect();
            EngineError::InvalidInput(format!(
                "{} device '{}' does not support {rate} Hz (it offers {}); leave sample_rate unset \
                 to use the device's own rate, the engine resamples",
                dir.word(),
                device_id(device),
                offered.join(", ")
            ))
        })
}

/// Frames per period to ask for: `period` if given, else half the latency's buffer (cpal
/// asks for two periods), clamped to what the device reports.
fn period_for(config: &SupportedStreamConfig, period: Option<u32>, latency: Latency) -> u32 {
    let half_buffer = latency.buffer_ms(Host::Alsa) / 2000.0 * f64::from(config.sample_rate());
    let wanted = period.unwrap_or((half_buffer.round() as u32).max(32));
    match *config.buffer_size() {
        SupportedBufferSize::Range { min, max } => wanted.clamp(min, max),
        SupportedBufferSize::Unknown => wanted,
    }
}

/// Maps a cpal error kind to the code stored in `SharedStats::last_device_error`.
fn error_code(kind: cpal::ErrorKind) -> u32 {
    use cpal::ErrorKind as K;
    match kind {
        K::Xrun => 1,
        K::DeviceNotAvailable => 2,
        K::DeviceChanged => 3,
        K::StreamInvalidated => 4,
        K::DeviceBusy => 5,
        _ => 99,
    }
}

/// Human-readable name of a `last_device_error` code.
pub fn device_error_name(code: u32) -> &'static str {
    match code {
        0 => "",
        1 => "xrun",
        2 => "device not available",
        3 => "device changed",
        4 => "stream invalidated",
        5 => "device busy",
        _ => "backend error",
    }
}

/// A device direction resolved to a device and a stream configuration, not yet running.
pub struct ResolvedDevice {
    device: cpal::Device,
    config: SupportedStreamConfig,
    period: u32,
}

impl std::fmt::Debug for ResolvedDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedDevice")
            .field("device", &device_id(&self.device))
            .field("config", &self.config)
            .finish()
    }
}

impl ResolvedDevice {
    /// Device rate in Hz.
    pub fn rate(&self) -> u32 {
        self.config.sample_rate()
    }
    /// Device channel count.
    pub fn channels(&self) -> u16 {
        self.config.channels()
    }
    /// Frames per callback requested (the device may deliver other sizes).
    pub fn period_frames(&self) -> u32 {
        self.period
    }
    /// Device buffer requested: cpal asks ALSA for two periods.
    pub fn buffer_frames(&self) -> u32 {
        self.period * 2
    }
    /// Stable id, e.g. `alsa:default`.
    pub fn id(&self) -> String {
        device_id(&self.device)
    }
    /// The cpal device.
    pub fn device(&self) -> &cpal::Device {
        &self.device
    }
    /// Rate and channels to open it with (buffer size set by the caller).
    pub fn stream_config(&self) -> StreamConfig {
        self.config.config()
    }
    /// The device's sample format.
    pub fn sample_format(&self) -> SampleFormat {
        self.config.sample_format()
    }
}

/// Resolves one direction of a [`CpalConfig`]; `Ok(None)` when it is disabled.
///
/// # Errors
/// [`EngineError::UnknownDevice`], [`EngineError::Device`] or [`EngineError::InvalidInput`].
pub fn resolve(config: &CpalConfig, input: bool) -> Result<Option<ResolvedDevice>> {
    quiet_alsa();
    let dir = if input {
        Direction::Input
    } else {
        Direction::Output
    };
    let selector = if input { &config.input } else { &config.output };
    let Some(device) = find_device(selector, dir)? else {
        return Ok(None);
    };
    let chosen = choose_config(&device, dir, config.sample_rate)?;
    if usize::try_from(config.period_frames.unwrap_or(0)).unwrap_or(usize::MAX) > MAX_BLOCK_FRAMES {
        return Err(EngineError::InvalidInput(format!(
            "period_frames must be at most {MAX_BLOCK_FRAMES}"
        )));
    }
    let period = period_for(&chosen, config.period_frames, config.latency());
    Ok(Some(ResolvedDevice {
        device,
        config: chosen,
        period,
    }))
}

/// Counts device errors into `stats`, with bursts closer than 100 ms counted as one
/// episode. **Real time**: atomics and the clock only.
pub fn device_error_counter(stats: Arc<SharedStats>) -> impl FnMut(&cpal::Error) + Send + 'static {
    // cpal's ALSA worker can report one fault thousands of times in a few milliseconds (the
    // pulse plugin's delay query failing in a loop), so errors closer together than
    // ERROR_BURST count as one episode.
    let mut last: Option<std::time::Instant> = None;
    move |err: &cpal::Error| {
        let now = std::time::Instant::now();
        if last.is_none_or(|t| now.duration_since(t) > ERROR_BURST) {
            stats.device_errors.fetch_add(1, Relaxed);
        }
        last = Some(now);
        stats.device_error_callbacks.fetch_add(1, Relaxed);
        stats
            .last_device_error
            .store(error_code(err.kind()), Relaxed);
    }
}

/// A cpal error callback that only counts (see [`device_error_counter`]). **Real time.**
pub fn device_error_handler(stats: Arc<SharedStats>) -> impl FnMut(cpal::Error) + Send + 'static {
    let mut count = device_error_counter(stats);
    move |err: cpal::Error| count(&err)
}

/// Errors closer together than this are one episode.
const ERROR_BURST: std::time::Duration = std::time::Duration::from_millis(100);
