//! What only the PostgreSQL backend has to show: its connection and its migrations. What every
//! backend must do is in the conformance suite.

use vane_store::testing::TestDb;
use vane_store::{PgStore, StoreError};

/// The sync client panics when it blocks inside a tokio runtime; the engine and the HTTP layer
/// live in one, so a store call made there must work all the same.
#[test]
fn a_store_is_usable_from_inside_a_tokio_runtime() {
    let db = TestDb::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let version = rt.block_on(async {
        let store = PgStore::connect(db.url()).unwrap();
        store.schema_version().unwrap()
    });
    assert!(version > 0);
}

#[test]
fn an_unreachable_server_is_named_without_its_password() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let err = PgStore::connect("postgres://vane:s3cret@127.0.0.1:1/vane").unwrap_err();
    let StoreError::Open { path, .. } = &err else {
        panic!("expected an open error, got {err:?}");
    };
    assert_eq!(path, "postgres://vane:***@127.0.0.1:1/vane");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}
