//! Engine records (stats, interrupt reports, device info) as Python values, generically.
//!
//! The field lists live in the engine crate ([`duplex_engine::Fields`]); nothing here names
//! a field, so a new counter needs no change in the bindings. The names and kinds are also
//! published (`STATS_FIELDS`, ...) so the typed Python classes can be checked against them.

use duplex_engine::{Fields, Kind, Value};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

/// A record as a dict of its fields, in declaration order.
pub(crate) fn to_dict<'py>(py: Python<'py>, record: &impl Fields) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (name, value) in record.fields() {
        match value {
            Value::UInt(v) => d.set_item(name, v)?,
            Value::Float(v) => d.set_item(name, v)?,
            Value::Bool(v) => d.set_item(name, v)?,
            Value::Str(v) => d.set_item(name, v)?,
        }
    }
    Ok(d)
}

/// `((name, python type name), ...)` of a record type, for the module's `*_FIELDS` constants.
pub(crate) fn field_kinds<'py, T: Fields + Default>(
    py: Python<'py>,
) -> PyResult<Bound<'py, PyTuple>> {
    let pairs: Vec<(&'static str, &'static str)> = T::field_kinds()
        .into_iter()
        .map(|(name, kind): (&'static str, Kind)| (name, kind.python_name()))
        .collect();
    PyTuple::new(py, pairs)
}
