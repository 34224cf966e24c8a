use super::SqliteStore;
use crate::checks::CheckStore;

impl CheckStore for SqliteStore {}
