//! The PostgreSQL backend, for several schedulers (on several hosts) sharing one history.
//!
//! # Why the synchronous `postgres` client, and no pool
//!
//! [`crate::Store`] is synchronous: the engine reaches it through store threads, and the CLI
//! calls it directly. The sync `postgres` client fits that trait with no adapter, and, unlike
//! `sqlx` (no sync API) or `diesel` (no LISTEN/NOTIFY), it keeps LISTEN/NOTIFY within reach for
//! waking agents later. Each [`PgStore`] value holds one connection, as each
//! [`crate::SqliteStore`] holds one: a thread that needs the store owns a store, so a pool
//! crate would add nothing but a second place to configure sizes.
//!
//! The client drives its own single-threaded tokio runtime with `block_on`, which panics when
//! called on a thread that is already inside a tokio runtime. Every use of the connection
//! therefore goes through one choke point, [`PgStore::with_client`], which moves the call to a
//! scoped thread in that case. Nothing else touches the client, so the panic cannot happen.
//!
//! # Concurrency
//!
//! Transactions run at READ COMMITTED. Where SQLite's single writer makes a read-then-write
//! correct, the PostgreSQL queries take row locks (`FOR UPDATE`), rely on unique constraints
//! (`ON CONFLICT`) or on advisory locks instead. A serialization failure or a deadlock makes the
//! outermost transaction start over (see [`PgStore::write_tx`]).

use std::cell::{Cell, RefCell};
use std::time::Duration;

use ::postgres::error::SqlState;
use ::postgres::{Client, NoTls};

use crate::{Result, StoreError};

mod alerts;
mod artifacts;
mod checks;
mod dispatch;
mod heartbeat;
mod lease;
mod locks;
mod metrics;
mod migrate;
mod observe;
mod registry;
mod store;
mod values;

/// How many times a transaction that lost a serialization conflict or a deadlock starts over
/// before the error reaches the caller. Conflicts need two schedulers touching the same rows in
/// the same milliseconds; several in a row mean something else is wrong.
const CONFLICT_RETRIES: u32 = 10;

/// The PostgreSQL backend: one connection, reconnected when the server dropped it.
pub struct PgStore {
    /// The URL as given, password included: reconnecting needs it. Never printed; see
    /// [`PgStore::url`].
    url: String,
    /// `None` only while the store is dropped: see the `Drop` impl.
    client: RefCell<Option<Client>>,
    /// How many transactions (the outer one and savepoints) are open on the connection. A
    /// `Cell` makes the store `!Sync`, as `SqliteStore` is: one thread at a time uses a store.
    depth: Cell<u32>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("url", &self.url()).finish()
    }
}

impl Drop for PgStore {
    /// Closing the connection blocks on the client's runtime, which panics inside another.
    fn drop(&mut self) {
        if let Some(client) = self.client.get_mut().take() {
            off_runtime(move || drop(client));
        }
    }
}

/// Armed while a transaction's work runs: should the work panic, the transaction is neither
/// committed nor left open. Its connection is dropped, which rolls back on the server and
/// frees its locks, and the next call connects afresh outside any transaction.
struct Unwinding<'a> {
    store: &'a PgStore,
}

impl Drop for Unwinding<'_> {
    fn drop(&mut self) {
        self.store.depth.set(0);
        self.store.abandon_connection();
    }
}

impl From<::postgres::Error> for StoreError {
    fn from(e: ::postgres::Error) -> Self {
        // A lock held past `lock_timeout`, or a statement cancelled by `statement_timeout`: the
        // database is busy, and trying again later can succeed (HTTP 503, not 500).
        let busy = e
            .code()
            .is_some_and(|c| *c == SqlState::LOCK_NOT_AVAILABLE || *c == SqlState::QUERY_CANCELED);
        if busy {
            StoreError::Busy(Box::new(e))
        } else {
            StoreError::Backend(Box::new(e))
        }
    }
}

/// Whether an error is one that the same transaction, started over, may not meet again.
fn is_conflict(error: &StoreError) -> bool {
    let StoreError::Backend(e) = error else {
        return false;
    };
    let code = e.downcast_ref::<::postgres::Error>().and_then(|e| e.code());
    code == Some(&SqlState::T_R_SERIALIZATION_FAILURE)
        || code == Some(&SqlState::T_R_DEADLOCK_DETECTED)
}

/// Whether work that failed with `error` on its `attempt`th try is started over: a conflict,
/// within [`CONFLICT_RETRIES`], after a short, growing pause that lets the other transaction
/// finish.
fn start_over(attempt: &mut u32, error: &StoreError) -> bool {
    *attempt += 1;
    if *attempt > CONFLICT_RETRIES || !is_conflict(error) {
        return false;
    }
    std::thread::sleep(Duration::from_millis(5 * u64::from(*attempt)));
    true
}

/// A number PostgreSQL keeps as `bigint` that vane holds as `u32` (attempt numbers, pids).
pub(crate) fn to_u32(value: i64, what: &str) -> Result<u32> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what}: {value}")))
}

/// `url` without its password, for messages: the password may sit in the user-info part
/// (`postgres://user:secret@host/db`) or in a `password=` query parameter.
pub(crate) fn redact(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let mut out = match head.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            let authority = match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _password)) => format!("{user}:***@{host}"),
                    None => authority.to_string(),
                },
                None => authority.to_string(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => head.to_string(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => p.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// Runs `f` where the sync client may block: on this thread, or on a scoped thread when this
/// thread is inside a tokio runtime (where the client's own `block_on` would panic).
pub(crate) fn off_runtime<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| match s.spawn(f).join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    } else {
        f()
    }
}

/// How long connecting may take when the URL does not say (`connect_timeout`): without a
/// limit, a server whose host vanished leaves a starting scheduler hanging with no message.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long unacknowledged data may wait before the connection counts as lost, unless the URL
/// sets `tcp_user_timeout`.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a connection may be idle before keepalive probes check it, unless the URL sets
/// `keepalives_idle`.
/// Server-side limits of every vane session (unless the URL sets `options` itself): a
/// transaction left idle is ended, a lock not granted in time fails the statement (retried
/// as busy), and no statement runs longer than any vane query should.
const SESSION_OPTIONS: &str =
    "-c idle_in_transaction_session_timeout=60s -c lock_timeout=30s -c statement_timeout=300s";

const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);

/// Calls `wake` for each notification on `channel`, on a connection of its own, until the
/// connection fails.
pub(crate) fn listen(url: &str, channel: &str, wake: &dyn Fn()) -> Result<()> {
    let mut client = connect(url)?;
    client.batch_execute(&format!("LISTEN {channel}"))?;
    let mut notifications = client.notifications();
    let mut iter = notifications.blocking_iter();
    while postgres::fallible_iterator::FallibleIterator::next(&mut iter)?.is_some() {
        wake();
    }
    Ok(())
}

fn connect(url: &str) -> Result<Client> {
    let open_err = |e: ::postgres::Error| StoreError::Open {
        path: redact(url),
        source: Box::new(e),
    };
    let mut config: ::postgres::Config = url.parse().map_err(open_err)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    // A cut network (a host's link down, a partition) must end a query with an error rather
    // than leave it waiting for an answer that will never come: the kernel gives up on data
    // the server never acknowledged after `tcp_user_timeout`, and keepalives find an idle
    // connection dead. Without these, Linux retries for about 15 minutes.
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(NETWORK_TIMEOUT);
    }
    // The parsed config cannot tell a default idle time from one the URL gave, so ask the URL.
    if !url.contains("keepalives_idle") {
        config.keepalives_idle(KEEPALIVE_IDLE);
    }
    // Then probe every 5 s and give up after 3 unanswered: a dead peer is found within
    // about 25 s of idleness, inside a scheduler lease's default time to live.
    if !url.contains("keepalives_interval") {
        config.keepalives_interval(Duration::from_secs(5));
    }
    if !url.contains("keepalives_retries") {
        config.keepalives_retries(3);
    }
    // The server's side of the same rule: a session of a vane that vanished mid-transaction
    // (its host lost, a paused VM) must not hold row and advisory locks that every other
    // scheduler then waits on; nor may any one wait or statement go on unbounded.
    if config.get_options().is_none() {
        config.options(SESSION_OPTIONS);
    }
    // Names vane's sessions in `pg_stat_activity`, for whoever looks after the server.
    if config.get_application_name().is_none() {
        config.application_name("vane");
    }
    off_runtime(|| config.connect(NoTls)).map_err(open_err)
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`) and brings its schema
    /// up to date. Several processes may do this at once on a new database: one migrates, the
    /// others wait for it.
    ///
    /// # Errors
    /// [`StoreError::Open`] (naming the URL without its password) when the server cannot be
    /// reached or refuses the login; [`StoreError::TooNew`] when a newer vane migrated it.
    pub fn connect(url: &str) -> Result<Self> {
        let store = Self {
            url: url.to_string(),
            client: RefCell::new(Some(connect(url)?)),
            depth: Cell::new(0),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The URL this store connected to, without its password.
    pub fn url(&self) -> String {
        redact(&self.url)
    }

    /// The one way to the connection. `f` cannot reach the store itself (a `&PgStore` is not
    /// `Send`), so it cannot re-enter and nothing else holds the connection meanwhile.
    ///
    /// Outside a transaction, a connection the server closed (a restart, a failover) is
    /// replaced first; inside one, the error reaches the caller, since the transaction is lost.
    ///
    /// # Errors
    /// What `f` returned, or a failure to reconnect.
    pub(crate) fn with_client<R: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<R> + Send,
    ) -> Result<R> {
        let mut slot = self.client.borrow_mut();
        let slot: &mut Option<Client> = &mut slot;
        let (url, idle) = (&self.url, self.depth.get() == 0);
        // Replacing drops the old client, which blocks too: both happen off the runtime.
        off_runtime(move || {
            if idle && slot.as_ref().is_none_or(Client::is_closed) {
                *slot = Some(connect(url)?);
            }
            let client = slot
                .as_mut()
                .expect("the connection is set while the store lives");
            f(client)
        })
    }

    /// Runs `work` in a transaction: the whole transaction when none is open, a savepoint inside
    /// the open one otherwise (see [`crate::AlertStore::atomically`]), so nested work commits
    /// with the outer transaction or not at all, while a failure inside undoes only its part.
    ///
    /// `work` runs on the calling thread and reaches the connection through
    /// [`PgStore::with_client`], one statement or several at a time; it may call other store
    /// methods, which nest. The outermost transaction starts `work` over after a serialization
    /// failure or a deadlock; a nested one passes the error up for the outer one to retry.
    ///
    /// # Errors
    /// What `work` returned, or a failure to begin or commit; either way nothing `work` wrote
    /// remains.
    pub(crate) fn write_tx<R>(&self, mut work: impl FnMut() -> Result<R>) -> Result<R> {
        let outer = self.depth.get() == 0;
        let mut attempt = 0;
        loop {
            let (begin, commit, rollback) = if outer {
                ("BEGIN", "COMMIT", "ROLLBACK")
            } else {
                (
                    "SAVEPOINT nested",
                    "RELEASE nested",
                    "ROLLBACK TO nested; RELEASE nested",
                )
            };
            self.with_client(|c| Ok(c.batch_execute(begin)?))?;
            self.depth.set(self.depth.get() + 1);
            let unwinding = Unwinding { store: self };
            let result = work();
            std::mem::forget(unwinding);
            let result = match result {
                Ok(value) => self
                    .with_client(|c| Ok(c.batch_execute(commit)?))
                    .map(|()| value),
                Err(e) => Err(e),
            };
            self.depth.set(self.depth.get() - 1);
            match result {
                Ok(value) => return Ok(value),
                Err(e) => {
                    // After a failed COMMIT PostgreSQL has ended the transaction already; a
                    // ROLLBACK then only warns. Errors here are ignored: a dropped connection
                    // has undone everything itself.
                    let _ = self.with_client(|c| Ok(c.batch_execute(rollback)?));
                    if outer && start_over(&mut attempt, &e) {
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// One statement in a transaction of its own: the server commits it as it answers, so it
    /// costs one round trip where [`PgStore::write_tx`] costs three. Started over after a
    /// serialization failure or a deadlock, as the outermost transaction is.
    ///
    /// # Errors
    /// What `work` returned; nothing it wrote remains then.
    pub(crate) fn statement<R: Send>(
        &self,
        mut work: impl FnMut(&mut Client) -> Result<R> + Send,
    ) -> Result<R> {
        debug_assert_eq!(
            self.depth.get(),
            0,
            "a statement of its own, in a transaction"
        );
        let mut attempt = 0;
        loop {
            match self.with_client(&mut work) {
                Err(e) if start_over(&mut attempt, &e) => {}
                other => return other,
            }
        }
    }

    /// Drops the connection, which ends its open transaction on the server.
    fn abandon_connection(&self) {
        if let Ok(mut slot) = self.client.try_borrow_mut() {
            let client = slot.take();
            off_runtime(move || drop(client));
        }
    }

    /// A transaction whose whole work runs in one trip to the connection: for the many
    /// methods that need no decision of the calling thread between statements.
    ///
    /// # Errors
    /// As [`PgStore::write_tx`].
    pub(crate) fn tx<R: Send>(
        &self,
        mut work: impl FnMut(&mut Client) -> Result<R> + Send,
    ) -> Result<R> {
        self.write_tx(|| self.with_client(&mut work))
    }

    /// Schema version after migrations.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    pub fn schema_version(&self) -> Result<i64> {
        self.with_client(migrate::version)
    }
}

#[cfg(test)]
mod tests {
    use super::redact;
    use crate::BackendKind;

    #[test]
    fn urls_name_postgresql_and_everything_else_is_a_sqlite_path() {
        for url in [
            "postgres://db/vane",
            "postgresql://u@db/vane",
            "PostgreSQL://db",
        ] {
            assert_eq!(BackendKind::of(url), BackendKind::Postgresql, "{url}");
        }
        for path in [
            "vane.db",
            "/var/lib/vane/vane.db",
            "./postgres/vane.db",
            "mysql://x",
        ] {
            assert_eq!(BackendKind::of(path), BackendKind::Sqlite, "{path}");
        }
        assert_eq!(BackendKind::Postgresql.to_string(), "postgresql");
    }

    /// Two schedulers locking the same rows in opposite orders: PostgreSQL aborts one, and the
    /// store starts its transaction over instead of failing the caller.
    #[test]
    fn a_transaction_that_lost_a_deadlock_is_started_over() {
        use std::sync::Barrier;
        use std::sync::atomic::{AtomicU32, Ordering};

        let db = crate::testing::TestDb::new();
        db.store()
            .with_client(|c| {
                Ok(c.batch_execute(
                    "CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL);
                     INSERT INTO counters VALUES (1, 0), (2, 0);",
                )?)
            })
            .unwrap();
        let both_hold_one = Barrier::new(2);
        let attempts = AtomicU32::new(0);
        std::thread::scope(|s| {
            for order in [[1, 2], [2, 1]] {
                let (db, both_hold_one, attempts) = (&db, &both_hold_one, &attempts);
                s.spawn(move || {
                    let store = db.store();
                    let mut first = true;
                    store
                        .write_tx(|| {
                            attempts.fetch_add(1, Ordering::SeqCst);
                            let bump = |id: i32| {
                                store.with_client(move |c| {
                                    c.execute(
                                        "UPDATE counters SET n = n + 1 WHERE id = $1",
                                        &[&id],
                                    )?;
                                    Ok(())
                                })
                            };
                            bump(order[0])?;
                            if std::mem::take(&mut first) {
                                both_hold_one.wait();
                            }
                            bump(order[1])
                        })
                        .unwrap();
                });
            }
        });
        // Each transaction's work counted once, and one of them ran twice.
        let counts = db
            .store()
            .with_client(|c| {
                Ok(c.query("SELECT n FROM counters ORDER BY id", &[])?
                    .iter()
                    .map(|r| r.get::<_, i32>(0))
                    .collect::<Vec<_>>())
            })
            .unwrap();
        assert_eq!(counts, vec![2, 2]);
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
    }

    /// A person looking at the server's sessions sees which are vane's.
    #[test]
    fn sessions_are_named_vane_unless_the_url_names_them() {
        let db = crate::testing::TestDb::new();
        let name = |store: &super::PgStore| {
            store
                .with_client(|c| {
                    Ok(
                        c.query_one("SELECT current_setting('application_name')", &[])?
                            .get::<_, String>(0),
                    )
                })
                .unwrap()
        };
        assert_eq!(name(&db.store()), "vane");
        let named = super::PgStore::connect(&format!("{}?application_name=etl", db.url())).unwrap();
        assert_eq!(name(&named), "etl");
    }

    #[test]
    fn passwords_are_left_out_of_urls_shown() {
        assert_eq!(
            redact("postgres://vane:s3cret@db.example:5432/vane"),
            "postgres://vane:***@db.example:5432/vane"
        );
        assert_eq!(
            redact("postgresql://vane@db/vane?sslmode=disable&password=s3cret"),
            "postgresql://vane@db/vane?sslmode=disable&password=***"
        );
        assert_eq!(
            redact("postgres://root@127.0.0.1/test"),
            "postgres://root@127.0.0.1/test"
        );
    }
}
