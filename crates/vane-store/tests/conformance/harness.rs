//! The backends the suite runs on.

use vane_store::testing::TestDb;
use vane_store::{SqliteStore, Store};

/// A fresh, empty database on one backend, for one test case.
pub(crate) trait Backend: Sync {
    type Store: ?Sized;
    /// A new connection to this test's database: another process, as far as the store knows.
    fn open(&self) -> Box<Self::Store>;
}

/// A SQLite file in a temporary folder.
pub(crate) struct Sqlite {
    dir: tempfile::TempDir,
}

impl Sqlite {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
}

impl Backend for Sqlite {
    type Store = dyn Store + Send;
    fn open(&self) -> Box<Self::Store> {
        Box::new(SqliteStore::open(&self.dir.path().join("vane.db")).unwrap())
    }
}

/// A database of its own on the test server (`VANE_TEST_PG`), dropped after the case.
pub(crate) struct Postgres {
    db: TestDb,
}

impl Postgres {
    pub(crate) fn new() -> Self {
        Self { db: TestDb::new() }
    }
}

impl Backend for Postgres {
    type Store = dyn Store + Send;
    fn open(&self) -> Box<Self::Store> {
        Box::new(self.db.store())
    }
}
