//! What only the PostgreSQL backend has to show: its connection and its migrations. What every
//! backend must do is in the conformance suite.

use chrono::{DateTime, Utc};
use vane_store::testing::TestDb;
use vane_store::{NewDagVersion, NewRun, PgStore, RunFilter, RunId, Store, StoreError, Trigger};

/// A run of DAG `demo` (one task, `a`) for `at`, created at `at`.
fn demo_run(store: &PgStore, at: DateTime<Utc>) -> RunId {
    let version = store
        .record_dag_version(&NewDagVersion {
            dag_id: "demo",
            content_hash: "h1",
            path: "dags/demo.toml",
            source: "",
        })
        .unwrap();
    store
        .create_run(&NewRun {
            dag_id: "demo",
            dag_version: version,
            logical_date: at,
            trigger: Trigger::Manual,
            params: serde_json::json!({}),
            git: None,
            host: "box",
            timezone: "UTC",
            tasks: &["a"],
            at,
            records_tick: false,
            backfill: None,
        })
        .unwrap()
}

/// The sync client panics when it blocks inside a tokio runtime; the engine and the HTTP layer
/// live in one, so a store call made there must work all the same.
#[test]
fn a_store_is_usable_from_inside_a_tokio_runtime() {
    let db = TestDb::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let runs = rt.block_on(async {
        // Connecting, a transaction, a query and the drop that closes the connection: each
        // would block on the client's runtime inside this one.
        let store = PgStore::connect(db.url()).unwrap();
        demo_run(&store, Utc::now());
        store.runs(&RunFilter::default()).unwrap()
    });
    assert_eq!(runs.len(), 1);
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

/// Several schedulers started at once on a new database: one migrates, the others wait for it
/// and find the schema current, rather than failing on tables created under them.
#[test]
fn concurrent_first_starts_migrate_once() {
    let db = TestDb::new();
    let versions: Vec<i64> = std::thread::scope(|s| {
        let starts: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    PgStore::connect(db.url())
                        .unwrap()
                        .schema_version()
                        .unwrap()
                })
            })
            .collect();
        starts.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let known = vane_store::SqliteStore::open_in_memory()
        .unwrap()
        .schema_version()
        .unwrap();
    assert_eq!(versions, vec![known; 4]);
}

#[test]
fn a_database_migrated_by_a_newer_vane_is_refused() {
    let db = TestDb::new();
    let known = db.store().schema_version().unwrap();
    let mut admin = postgres::Client::connect(db.url(), postgres::NoTls).unwrap();
    admin
        .execute("UPDATE vane_schema SET version = $1", &[&(known + 1)])
        .unwrap();
    drop(admin);
    let err = PgStore::connect(db.url()).unwrap_err();
    assert!(
        matches!(err, StoreError::TooNew { found, known: k } if found == known + 1 && k == known),
        "{err:?}"
    );
}

/// A server restart (or a failover) drops every connection: a long-running scheduler must not
/// stay broken. The call that finds the connection gone fails; the next one reconnects.
#[test]
fn a_dropped_connection_is_replaced() {
    let db = TestDb::new();
    let store = db.store();
    store.set_paused("demo", true).unwrap();
    let mut admin = postgres::Client::connect(db.url(), postgres::NoTls).unwrap();
    let killed: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(killed, 1);
    let _ = store.pause_switches();
    assert_eq!(
        store
            .pause_switches()
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        vec![("demo".to_owned(), true)]
    );
}

/// `--db postgres://…` reaches that database: what `vane_store::open` records there, a store
/// connected to it directly reads.
#[test]
fn a_postgres_url_opens_that_database() {
    let db = TestDb::new();
    let opened = vane_store::open(db.url()).unwrap();
    let version = opened
        .record_dag_version(&NewDagVersion {
            dag_id: "demo",
            content_hash: "h",
            path: "dags/demo.toml",
            source: "seen",
        })
        .unwrap();
    assert_eq!(db.store().dag_source(version).unwrap(), "seen");
}

/// Transitions reach the server as one JSON batch (`vane_apply`), so what comes back must be
/// what the binary protocol kept before: times to the microsecond (truncated), numbers exact,
/// text with quotes and backslashes untouched.
#[test]
fn a_batch_sent_as_json_keeps_times_numbers_and_text_exactly() {
    use chrono::{TimeZone, Timelike};
    use vane_store::{Change, RunState};

    let db = TestDb::new();
    let store = PgStore::connect(db.url()).unwrap();
    let at = Utc.with_ymd_and_hms(2026, 3, 29, 1, 59, 59).unwrap();
    let at = at.with_nanosecond(123_456_789).unwrap();
    let run = demo_run(&store, at);
    let command = r#"echo 'it''s' "a \"quote\"" \\n $HOME"#;
    let values = [0.1 + 0.2, 1e-300, -2.5e300, 7.0];
    let mut changes = vec![
        Change::Run {
            run,
            state: RunState::Running,
            reason: None,
            at,
        },
        Change::AttemptStarted {
            run,
            task: "a".into(),
            attempt: 1,
            command: command.into(),
            host: "box".into(),
            log_path: "/tmp/ünïcode log.txt".into(),
            at,
        },
        Change::AttemptProcess {
            run,
            task: "a".into(),
            attempt: 1,
            pid: u32::MAX,
            pid_start_time: Some(u64::from(u32::MAX) * 4),
        },
    ];
    changes.extend(values.iter().enumerate().map(|(i, &value)| Change::Metric {
        run,
        task: "a".into(),
        attempt: 1,
        name: format!("m{i}"),
        value,
        at,
    }));
    store.apply(&changes).unwrap();

    let detail = store.run(run).unwrap();
    assert_eq!(detail.run.started_at.unwrap().nanosecond(), 123_456_000);
    let attempt = &detail.tasks[0].attempts[0];
    assert_eq!(attempt.started_at, at.with_nanosecond(123_456_000).unwrap());
    assert_eq!(attempt.command, command);
    assert_eq!(attempt.log_path, "/tmp/ünïcode log.txt");
    assert_eq!(attempt.pid, Some(u32::MAX));
    assert_eq!(attempt.pid_start_time, Some(u64::from(u32::MAX) * 4));
    let mut metrics = attempt.metrics.clone();
    metrics.sort_by(|a, b| a.0.cmp(&b.0));
    let kept: Vec<f64> = metrics.iter().map(|(_, v)| *v).collect();
    assert_eq!(kept, values, "{metrics:?}");
}
