//! Conversions between the values the traits use and the columns that hold them. Every
//! integer column is `bigint`, so narrower Rust integers are checked on the way out.

use std::str::FromStr;

use crate::{Result, StoreError};

/// A text column holding one of an enum's names.
pub(super) fn parse_enum<T: FromStr<Err = String>>(text: &str) -> Result<T> {
    text.parse().map_err(StoreError::Corrupt)
}

/// An attempt number.
pub(super) fn attempt_number(value: i64) -> Result<u32> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("attempt number {value}")))
}

/// A count or a size, never negative.
pub(super) fn unsigned(value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative count {value}")))
}
