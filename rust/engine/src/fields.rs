//! Field lists of the records the engine hands out ([`Stats`](crate::Stats),
//! [`InterruptReport`](crate::InterruptReport), [`DeviceInfo`](crate::DeviceInfo),
//! [`DeviceParams`](crate::DeviceParams), [`DeviceEvent`](crate::DeviceEvent),
//! [`DeviceStatus`]), declared once, here in the engine.
//!
//! Bindings convert any [`Fields`] record generically (the Python bindings turn it into a
//! dict and publish the names and kinds so the typed Python classes can be checked against
//! them), so a new counter is one struct field plus one name in its list below. The lists
//! destructure their struct without `..`: a field missing from its list does not compile.

use crate::cpal_device::DeviceInfo;
use crate::engine::DeviceParams;
use crate::playback::InterruptReport;
use crate::stats::{DeviceStatus, Stats};
use crate::supervisor::DeviceEvent;

/// One field's value, as a binding sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// An unsigned count, rate or size.
    UInt(u64),
    /// A measurement in the unit its name says (`_ms`, `_us`, `_dbfs`, ...).
    Float(f64),
    /// A flag.
    Bool(bool),
    /// Text.
    Str(&'a str),
}

/// The kind of a [`Value`], for declaring types in another language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// [`Value::UInt`].
    UInt,
    /// [`Value::Float`].
    Float,
    /// [`Value::Bool`].
    Bool,
    /// [`Value::Str`].
    Str,
}

impl Value<'_> {
    /// The kind of this value.
    pub fn kind(&self) -> Kind {
        match self {
            Value::UInt(_) => Kind::UInt,
            Value::Float(_) => Kind::Float,
            Value::Bool(_) => Kind::Bool,
            Value::Str(_) => Kind::Str,
        }
    }
}

impl Kind {
    /// The Python type name of this kind (`int`, `float`, `bool`, `str`).
    pub fn python_name(self) -> &'static str {
        match self {
            Kind::UInt => "int",
            Kind::Float => "float",
            Kind::Bool => "bool",
            Kind::Str => "str",
        }
    }
}

macro_rules! uint_value {
    ($($t:ty),*) => {$(
        impl From<&$t> for Value<'_> {
            fn from(v: &$t) -> Self {
                Value::UInt(u64::from(*v))
            }
        }
    )*};
}
uint_value!(u16, u32, u64);

impl From<&usize> for Value<'_> {
    fn from(v: &usize) -> Self {
        Value::UInt(*v as u64)
    }
}
impl From<&f32> for Value<'_> {
    fn from(v: &f32) -> Self {
        Value::Float(f64::from(*v))
    }
}
impl From<&f64> for Value<'_> {
    fn from(v: &f64) -> Self {
        Value::Float(*v)
    }
}
impl From<&bool> for Value<'_> {
    fn from(v: &bool) -> Self {
        Value::Bool(*v)
    }
}
impl<'a> From<&'a String> for Value<'a> {
    fn from(v: &'a String) -> Self {
        Value::Str(v)
    }
}

/// A record whose fields a binding can list and convert without knowing the struct.
pub trait Fields {
    /// Calls `visit` with every field's name and value, in declaration order.
    fn visit<'a>(&'a self, visit: &mut dyn FnMut(&'static str, Value<'a>));

    /// Every field's name and value, in declaration order.
    fn fields(&self) -> Vec<(&'static str, Value<'_>)> {
        let mut out = Vec::new();
        self.visit(&mut |name, value| out.push((name, value)));
        out
    }

    /// Every field's name and kind, in declaration order (from a default record).
    fn field_kinds() -> Vec<(&'static str, Kind)>
    where
        Self: Default,
    {
        Self::default()
            .fields()
            .into_iter()
            .map(|(name, value)| (name, value.kind()))
            .collect()
    }
}

/// Implements [`Fields`] for a struct from one list of its fields; the pattern has no `..`,
/// so forgetting a field is a compile error.
macro_rules! fields {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        impl Fields for $ty {
            fn visit<'a>(&'a self, visit: &mut dyn FnMut(&'static str, Value<'a>)) {
                let $ty { $($field),* } = self;
                $( Field::visit_as($field, stringify!($field), visit); )*
            }
        }
    };
}

/// A field of a [`fields!`] list: one value under its own name, or a record nested in place
/// (its fields published flat, under their own names), so a record such as [`DeviceStatus`]
/// is declared once and still reads as plain fields of [`Stats`].
trait Field {
    /// Calls `visit` for this field, named `name`.
    fn visit_as<'a>(&'a self, name: &'static str, visit: &mut dyn FnMut(&'static str, Value<'a>));
}

impl<T> Field for T
where
    for<'a> &'a T: Into<Value<'a>>,
{
    fn visit_as<'a>(&'a self, name: &'static str, visit: &mut dyn FnMut(&'static str, Value<'a>)) {
        visit(name, self.into());
    }
}

impl Field for DeviceStatus {
    fn visit_as<'a>(&'a self, _name: &'static str, visit: &mut dyn FnMut(&'static str, Value<'a>)) {
        self.visit(visit);
    }
}

fields!(Stats {
    input_rate_hz,
    output_rate_hz,
    input_channels,
    output_channels,
    period_frames,
    frames_captured,
    capture_overflows,
    capture_overflow_frames,
    nonfinite_samples,
    chunks_read,
    frames_played,
    frames_rendered,
    underruns,
    underrun_silence_ms,
    flushes,
    flushed_ms,
    frames_pushed,
    frames_flushed,
    playback_buffered_frames,
    output_callbacks,
    input_callbacks,
    callback_p50_us,
    callback_p99_us,
    callback_max_us,
    input_callback_p99_us,
    input_callback_max_us,
    jitter_p99_ms,
    jitter_max_ms,
    input_jitter_p99_ms,
    input_jitter_max_ms,
    playback_buffered_ms,
    capture_buffered_ms,
    input_rms_dbfs,
    input_peak_dbfs,
    output_rms_dbfs,
    output_peak_dbfs,
    device_errors,
    device_error_callbacks,
    last_device_error,
    turn_played_ms,
    turn_received_ms,
    input_ended,
    echo_cancellation,
    echo_backend,
    echo_frames,
    echo_erle_db,
    echo_delay_ms,
    echo_reference_late,
    echo_reference_dropped,
    echo_realignments,
    echo_shifts,
    echo_errors,
    echo_cost_mean_us,
    echo_cost_p99_us,
    echo_cost_max_us,
    device,
    jitter_buffer_ms,
});

fields!(DeviceInfo {
    index,
    id,
    name,
    host,
    input_channels,
    output_channels,
    default_rate_hz,
    is_default_input,
    is_default_output,
});

/// Rates carry their unit in the name, as in [`Stats`].
impl Fields for DeviceParams {
    fn visit<'a>(&'a self, visit: &mut dyn FnMut(&'static str, Value<'a>)) {
        let DeviceParams {
            input_rate,
            output_rate,
            input_channels,
            output_channels,
            period_frames,
        } = self;
        visit("input_rate_hz", Value::from(input_rate));
        visit("output_rate_hz", Value::from(output_rate));
        visit("input_channels", Value::from(input_channels));
        visit("output_channels", Value::from(output_channels));
        visit("period_frames", Value::from(period_frames));
    }
}

/// Published inside [`Stats`], under the names `Stats` always had (`state` is `device_state`,
/// ...). The leaked streams and the error callbacks per direction are not published: `Stats`
/// never carried them (`device_error_callbacks` counts both directions).
impl Fields for DeviceStatus {
    fn visit<'a>(&'a self, visit: &mut dyn FnMut(&'static str, Value<'a>)) {
        let DeviceStatus {
            state,
            lost_reason,
            losses,
            restores,
            leaked_streams: _,
            output_device,
            input_device,
            host,
            output_buffer_ms,
            device_rewrites,
            device_rewound_ms,
            latency_requested_ms,
            output_period_frames,
            input_period_frames,
            output_delay_ms,
            input_delay_ms,
            output_device_underruns,
            output_device_underrun_ms,
            input_device_overruns,
            input_device_overrun_ms,
            output_backend_xruns,
            input_backend_xruns,
            output_error_callbacks: _,
            input_error_callbacks: _,
            output_thread,
            input_thread,
        } = self;
        visit("device_state", Value::from(state));
        visit("device_lost_reason", Value::from(lost_reason));
        visit("device_losses", Value::from(losses));
        visit("device_restores", Value::from(restores));
        visit("latency_requested_ms", Value::from(latency_requested_ms));
        visit("output_period_frames", Value::from(output_period_frames));
        visit("input_period_frames", Value::from(input_period_frames));
        visit("host", Value::from(host));
        visit("output_device", Value::from(output_device));
        visit("input_device", Value::from(input_device));
        visit("output_buffer_ms", Value::from(output_buffer_ms));
        visit("device_rewrites", Value::from(device_rewrites));
        visit("device_rewound_ms", Value::from(device_rewound_ms));
        visit("output_delay_ms", Value::from(output_delay_ms));
        visit("input_delay_ms", Value::from(input_delay_ms));
        visit(
            "output_device_underruns",
            Value::from(output_device_underruns),
        );
        visit(
            "output_device_underrun_ms",
            Value::from(output_device_underrun_ms),
        );
        visit("input_device_overruns", Value::from(input_device_overruns));
        visit(
            "input_device_overrun_ms",
            Value::from(input_device_overrun_ms),
        );
        visit("output_backend_xruns", Value::from(output_backend_xruns));
        visit("input_backend_xruns", Value::from(input_backend_xruns));
        visit("output_thread", Value::from(output_thread));
        visit("input_thread", Value::from(input_thread));
    }
}

/// The kind by its name (`device_lost`, `device_restored`), as events are named in Python.
impl Fields for DeviceEvent {
    fn visit<'a>(&'a self, visit: &mut dyn FnMut(&'static str, Value<'a>)) {
        let DeviceEvent {
            kind,
            at_s,
            message,
            output_device,
            input_device,
            outage_ms,
            attempts,
        } = self;
        visit("kind", Value::Str(kind.name()));
        visit("at_s", Value::from(at_s));
        visit("message", Value::from(message));
        visit("output_device", Value::from(output_device));
        visit("input_device", Value::from(input_device));
        visit("outage_ms", Value::from(outage_ms));
        visit("attempts", Value::from(attempts));
    }
}

/// Reported in milliseconds (what a transcript is cut by) plus the exact heard frame count.
impl Fields for InterruptReport {
    fn visit<'a>(&'a self, visit: &mut dyn FnMut(&'static str, Value<'a>)) {
        let InterruptReport {
            heard_frames,
            received_frames: _,
            discarded_ms,
        } = self;
        visit("heard_ms", Value::Float(self.heard_ms()));
        visit("heard_frames", Value::from(heard_frames));
        visit("received_ms", Value::Float(self.received_ms()));
        visit("discarded_ms", Value::from(discarded_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_lists_every_field_once_with_its_kind() {
        let kinds = Stats::field_kinds();
        let mut names: Vec<_> = kinds.iter().map(|(n, _)| *n).collect();
        let total = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), total, "a field is listed twice");
        assert!(kinds.contains(&("frames_played", Kind::UInt)));
        assert!(kinds.contains(&("input_rms_dbfs", Kind::Float)));
        assert!(kinds.contains(&("last_device_error", Kind::Str)));
        assert!(kinds.contains(&("input_ended", Kind::Bool)));
    }

    #[test]
    fn stats_publishes_the_device_status_flat_in_place() {
        let names: Vec<_> = Stats::field_kinds().into_iter().map(|(n, _)| n).collect();
        assert!(
            !names.contains(&"device"),
            "the nested record is not a field itself"
        );
        let at = |name: &str| names.iter().position(|n| *n == name).unwrap();
        assert_eq!(at("device_state"), at("echo_cost_max_us") + 1);
        assert_eq!(at("input_thread") + 1, at("jitter_buffer_ms"));
        let mut stats = Stats::default();
        stats.device.state = "lost".into();
        stats.device.output_device_underruns = 3;
        let fields = stats.fields();
        assert!(fields.contains(&("device_state", Value::Str("lost"))));
        assert!(fields.contains(&("output_device_underruns", Value::UInt(3))));
    }

    #[test]
    fn interrupt_report_converts_frames_to_ms() {
        let r = InterruptReport {
            heard_frames: 24_000,
            received_frames: 48_000,
            discarded_ms: 5.0,
        };
        assert_eq!(
            r.fields(),
            vec![
                ("heard_ms", Value::Float(1000.0)),
                ("heard_frames", Value::UInt(24_000)),
                ("received_ms", Value::Float(2000.0)),
                ("discarded_ms", Value::Float(5.0)),
            ]
        );
    }
}
