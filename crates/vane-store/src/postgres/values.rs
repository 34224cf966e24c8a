//! Conversions between the values the traits use and the columns that hold them. Every
//! integer column is `bigint`, so narrower Rust integers are checked on the way out.

use std::str::FromStr;

use serde_json::Value;

use crate::{Result, StoreError};

/// A text column holding one of an enum's names.
pub(super) fn parse_enum<T: FromStr<Err = String>>(text: &str) -> Result<T> {
    text.parse().map_err(StoreError::Corrupt)
}

/// An attempt number.
pub(super) fn attempt_number(value: i64) -> Result<u32> {
    super::to_u32(value, "attempt number")
}

/// A count or a size, never negative.
pub(super) fn unsigned(value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative count {value}")))
}

/// What PostgreSQL's `text` and `jsonb` cannot hold, NUL, shown as the symbol for it (U+2400).
/// Only data vane did not write has one (a value in a corrupt dataset that a check shows);
/// recording it with a visible stand-in beats failing the attempt that found it.
pub(super) fn without_nul(text: &str) -> String {
    text.replace('\0', "\u{2400}")
}

/// [`without_nul`] for every string and key of a JSON value.
pub(super) fn json_without_nul(value: Value) -> Value {
    match value {
        Value::String(s) if s.contains('\0') => Value::String(without_nul(&s)),
        Value::Array(items) => Value::Array(items.into_iter().map(json_without_nul).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (without_nul(&k), json_without_nul(v)))
                .collect(),
        ),
        other => other,
    }
}
