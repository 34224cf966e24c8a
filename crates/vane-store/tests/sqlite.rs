//! What only the SQLite backend has to show. What every backend must do is in the conformance
//! suite.

use vane_store::{NewDagVersion, SqliteStore, Store};

#[test]
fn a_reopened_database_is_consistent_and_migrated_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/vane.db");
    let version = SqliteStore::open(&path).unwrap().schema_version().unwrap();
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), version);
    assert!(store.integrity_check().unwrap());
}

/// `--db <path>` opens (creating) the SQLite file there.
#[test]
fn a_path_opens_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vane.db");
    let opened = vane_store::open(path.to_str().unwrap()).unwrap();
    let version = opened
        .record_dag_version(&NewDagVersion {
            dag_id: "demo",
            content_hash: "h",
            path: "dags/demo.toml",
            source: "seen",
        })
        .unwrap();
    assert_eq!(
        SqliteStore::open(&path)
            .unwrap()
            .dag_source(version)
            .unwrap(),
        "seen"
    );
}
