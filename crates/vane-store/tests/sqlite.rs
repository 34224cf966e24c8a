//! What only the SQLite backend has to show. What every backend must do is in the conformance
//! suite.

use vane_store::SqliteStore;

#[test]
fn a_reopened_database_is_consistent_and_migrated_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/vane.db");
    let version = SqliteStore::open(&path).unwrap().schema_version().unwrap();
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), version);
    assert!(store.integrity_check().unwrap());
}
