//! The backends the suite runs on.

use vane_store::Store;
use vane_store::testing::TestDb;

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

/// Both open through [`vane_store::open`], as vane opens a `--db` value, so the suite checks
/// that each value reaches its backend.
impl Backend for Sqlite {
    type Store = dyn Store + Send;
    fn open(&self) -> Box<Self::Store> {
        let path = self.dir.path().join("vane.db");
        vane_store::open(path.to_str().unwrap()).unwrap()
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
        vane_store::open(self.db.url()).unwrap()
    }
}
