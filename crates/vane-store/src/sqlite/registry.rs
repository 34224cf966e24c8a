use super::SqliteStore;
use crate::registry::RegistryStore;

impl RegistryStore for SqliteStore {}
