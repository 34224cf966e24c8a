//! Throw-away PostgreSQL databases for tests (cargo feature `pg-test`).
//!
//! Tests connect to `VANE_TEST_PG` (default `postgres://root@127.0.0.1:5432/test`), create a
//! database of their own and drop it when done, so they run in parallel and leave nothing
//! behind. An unreachable server fails the test with a message saying so: a suite that skipped
//! PostgreSQL silently would pass while proving nothing about it.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::PgStore;
use crate::postgres::off_runtime;

/// The server tests use when `VANE_TEST_PG` is not set: the one CI starts.
pub const DEFAULT_URL: &str = "postgres://root@127.0.0.1:5432/test";

/// A database that exists for as long as this value: created empty, dropped (with any
/// connection still open to it) on drop.
#[derive(Debug)]
pub struct TestDb {
    admin_url: String,
    name: String,
    url: String,
}

fn admin_url() -> String {
    std::env::var("VANE_TEST_PG").unwrap_or_else(|_| DEFAULT_URL.to_string())
}

/// `url` naming database `name` instead of its own.
fn with_database(url: &str, name: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = head.find("://").map_or(0, |i| i + 3);
    let base = match head[authority_start..].find('/') {
        Some(slash) => &head[..authority_start + slash],
        None => head,
    };
    format!("{base}/{name}{query}")
}

fn admin(url: &str) -> postgres::Client {
    off_runtime(|| postgres::Client::connect(url, postgres::NoTls)).unwrap_or_else(|e| {
        panic!(
            "cannot reach the PostgreSQL server for tests at {} ({e}). Start it (CI's .ci/run \
             does), or point VANE_TEST_PG at one where this role may CREATE DATABASE.",
            crate::postgres::redact(url)
        )
    })
}

impl TestDb {
    /// Creates a fresh, uniquely named database.
    ///
    /// # Panics
    /// When the server is unreachable or refuses to create the database.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let admin_url = admin_url();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "vane_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut client = admin(&admin_url);
        off_runtime(|| client.batch_execute(&format!("CREATE DATABASE {name}")))
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let url = with_database(&admin_url, &name);
        Self {
            admin_url,
            name,
            url,
        }
    }

    /// The URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A new store on this database (migrated on first use).
    ///
    /// # Panics
    /// When it cannot connect.
    pub fn store(&self) -> PgStore {
        PgStore::connect(&self.url)
            .unwrap_or_else(|e| panic!("cannot open test database {}: {e}", self.name))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let mut client = admin(&self.admin_url);
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = off_runtime(|| client.batch_execute(&sql)) {
            // Panicking in drop during a failing test would abort and hide the real failure.
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_test_database_replaces_the_database_of_the_url() {
        assert_eq!(
            super::with_database("postgres://root@127.0.0.1:5432/test", "t1"),
            "postgres://root@127.0.0.1:5432/t1"
        );
        assert_eq!(
            super::with_database("postgres://u:p@h/db?sslmode=disable", "t1"),
            "postgres://u:p@h/t1?sslmode=disable"
        );
        assert_eq!(
            super::with_database("postgres://h", "t1"),
            "postgres://h/t1"
        );
    }
}
