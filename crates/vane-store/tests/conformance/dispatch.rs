// Attempts handed to agents: claimed by label, each by one agent, fenced by token and lease,
// reaped when the agent's lease expires, cancelled when the owner asks.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use vane_store::*;

use crate::runs::{RACERS, new_run, race};

fn agent(store: &S, lease: &str, labels: &[(&str, &str)], ttl: Duration) -> BTreeMap<String, String> {
    store
        .acquire_lease(&NewLease {
            id: lease,
            host: lease,
            pid: 7,
            role: LeaseRole::Agent,
            ttl,
        })
        .unwrap();
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    store.register_agent(lease, lease, &labels, 2).unwrap();
    labels
}

fn needs(labels: &[(&str, &str)]) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn enqueue(store: &S, run: RunId, task: &str, need: &BTreeMap<String, String>, priority: i64) -> i64 {
    store
        .enqueue_dispatch(&NewDispatch {
            run,
            task,
            attempt: 1,
            poke: 0,
            needs: need,
            priority,
            job: &json!({"command": format!("echo {task}")}),
        })
        .unwrap()
}

/// A GPU attempt goes only to an agent with the label; the others go by priority, at most as
/// many as asked; enqueueing the same attempt twice is one row.
pub(crate) fn attempts_go_to_agents_with_their_labels_by_priority(db: &Db) {
    let store = db.open();
    let run = new_run(&*store, &["train", "a", "b"]);
    let gpu = enqueue(&*store, run, "train", &needs(&[("gpu", "a100")]), 0);
    assert_eq!(enqueue(&*store, run, "train", &needs(&[("gpu", "a100")]), 0), gpu);
    let low = enqueue(&*store, run, "a", &needs(&[]), 0);
    let high = enqueue(&*store, run, "b", &needs(&[]), 5);
    let cpu = agent(&*store, "cpu", &[("zone", "eu")], Duration::from_secs(60));
    let claimed = store.claim_dispatches("cpu", &cpu, 1).unwrap();
    assert_eq!(claimed.iter().map(|c| c.id).collect::<Vec<_>>(), [high]);
    assert_eq!(claimed[0].task, "b");
    assert_eq!(claimed[0].job["command"], "echo b");
    let claimed = store.claim_dispatches("cpu", &cpu, 5).unwrap();
    assert_eq!(claimed.iter().map(|c| c.id).collect::<Vec<_>>(), [low]);
    assert!(store.claim_dispatches("cpu", &cpu, 5).unwrap().is_empty());
    let gpu_labels = agent(&*store, "gpu", &[("gpu", "a100"), ("zone", "eu")], Duration::from_secs(60));
    let claimed = store.claim_dispatches("gpu", &gpu_labels, 5).unwrap();
    assert_eq!(claimed.iter().map(|c| c.id).collect::<Vec<_>>(), [gpu]);
    let of_run = store.run_dispatches(run).unwrap();
    assert_eq!(of_run.len(), 3);
    assert_eq!(of_run[0].agent_host.as_deref(), Some("gpu"));
    let agents = store.agents().unwrap();
    let gpu_agent = agents.iter().find(|a| a.lease == "gpu").unwrap();
    assert_eq!(gpu_agent.running, 1);
    assert_eq!(gpu_agent.state, LeaseState::Held);
    assert!(gpu_agent.offers(&needs(&[("gpu", "a100")])));
}

/// Many agents claiming at once: every attempt is claimed exactly once.
pub(crate) fn racing_agents_claim_each_attempt_once(db: &Db) {
    let store = db.open();
    let tasks: Vec<String> = (0..40).map(|i| format!("t{i}")).collect();
    let names: Vec<&str> = tasks.iter().map(String::as_str).collect();
    let run = new_run(&*store, &names);
    for task in &names {
        enqueue(&*store, run, task, &needs(&[]), 0);
    }
    for i in 0..RACERS {
        agent(&*store, &format!("agent-{i}"), &[], Duration::from_secs(60));
    }
    let claimed = race(db, |i, store| {
        let lease = format!("agent-{i}");
        let mut mine = Vec::new();
        loop {
            let got = store.claim_dispatches(&lease, &BTreeMap::new(), 3).unwrap();
            if got.is_empty() {
                break mine;
            }
            mine.extend(got.into_iter().map(|c| c.id));
        }
    });
    let mut all: Vec<i64> = claimed.into_iter().flatten().collect();
    all.sort_unstable();
    let before = all.len();
    all.dedup();
    assert_eq!(before, all.len(), "an attempt was claimed twice");
    assert_eq!(all.len(), 40);
}

/// An agent's writes carry its token: once its lease expired and the owner reaped the attempt,
/// its start and its outcome are refused, and the reaped outcome stands.
pub(crate) fn a_lost_agent_is_reaped_and_its_late_writes_refused(db: &Db) {
    let store = db.open();
    let run = new_run(&*store, &["a"]);
    let id = enqueue(&*store, run, "a", &needs(&[]), 0);
    let labels = agent(&*store, "short", &[], Duration::from_millis(400));
    let claimed = store.claim_dispatches("short", &labels, 1).unwrap().remove(0);
    store.dispatch_started(id, claimed.token, 4242, Some(9)).unwrap();
    let lost = json!({"lost": "agent gone"});
    // Alive: not reaped.
    assert!(!store.reap_dispatch(id, claimed.token, &lost).unwrap());
    std::thread::sleep(Duration::from_millis(600));
    let seen = store.dispatches(&[id]).unwrap().remove(0);
    assert!(!seen.agent_alive);
    assert_eq!(seen.pid, Some(4242));
    assert!(store.reap_dispatch(id, seen.token, &lost).unwrap());
    assert!(!store.reap_dispatch(id, seen.token, &lost).unwrap());
    let late = store.finish_dispatch(id, claimed.token, &json!({"exited": 0}));
    assert!(matches!(late, Err(StoreError::Fenced { .. })), "{late:?}");
    let late = store.dispatch_started(id, claimed.token, 1, None);
    assert!(matches!(late, Err(StoreError::Fenced { .. })), "{late:?}");
    let done = store.dispatches(&[id]).unwrap().remove(0);
    assert_eq!(done.state, DispatchState::Done);
    assert_eq!(done.outcome, Some(lost));
    // An agent whose lease is gone claims nothing.
    enqueue(&*store, run, "a2", &needs(&[]), 0);
    assert!(store.claim_dispatches("short", &labels, 5).unwrap().is_empty());
}

/// Cancelling a queued attempt ends it at once; a running one is flagged for its agent, which
/// finds it among what to kill and still reports how it ended.
pub(crate) fn a_cancel_ends_a_queued_attempt_and_reaches_a_running_one(db: &Db) {
    let store = db.open();
    let run = new_run(&*store, &["a", "b"]);
    let queued = enqueue(&*store, run, "a", &needs(&[("gpu", "x")]), 0);
    let stopped = json!({"cancelled": true});
    assert!(store.cancel_dispatch(queued, &stopped).unwrap());
    let row = store.dispatches(&[queued]).unwrap().remove(0);
    assert_eq!(row.state, DispatchState::Done);
    assert_eq!(row.outcome, Some(stopped.clone()));

    let running = enqueue(&*store, run, "b", &needs(&[]), 0);
    let labels = agent(&*store, "agent", &[], Duration::from_secs(60));
    let claimed = store.claim_dispatches("agent", &labels, 1).unwrap().remove(0);
    let held = [(running, claimed.token)];
    assert!(store.dispatches_to_kill("agent", &held).unwrap().is_empty());
    assert!(!store.cancel_dispatch(running, &stopped).unwrap());
    assert_eq!(store.dispatches_to_kill("agent", &held).unwrap(), [running]);
    assert_eq!(store.open_dispatches().unwrap().len(), 1);
    store
        .finish_dispatch(running, claimed.token, &stopped)
        .unwrap();
    assert!(store.open_dispatches().unwrap().is_empty());
}

/// A log is its chunks in the order recorded, the owner's lines after the agent's; a chunk an
/// agent ships after its attempt was taken from it is refused and never read.
pub(crate) fn log_chunks_read_in_order_and_a_fenced_agents_are_refused(db: &Db) {
    let store = db.open();
    let run = new_run(&*store, &["a"]);
    let id = enqueue(&*store, run, "a", &needs(&[]), 0);
    let labels = agent(&*store, "short", &[], Duration::from_millis(400));
    let claimed = store.claim_dispatches("short", &labels, 1).unwrap().remove(0);
    let of = LogChunkOf {
        run,
        task: "a",
        attempt: 1,
    };
    assert!(store.log_chunks(&of, 0).unwrap().is_empty());
    store.add_log_chunk(id, claimed.token, "logs/k/1", 10).unwrap();
    store.add_log_chunk(id, claimed.token, "logs/k/2", 5).unwrap();
    let chunks = store.log_chunks(&of, 0).unwrap();
    assert_eq!(
        chunks.iter().map(|c| (c.key.as_str(), c.bytes)).collect::<Vec<_>>(),
        [("logs/k/1", 10), ("logs/k/2", 5)]
    );
    // A follower asks only for what is new.
    let after = store.log_chunks(&of, chunks[0].id).unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].key, "logs/k/2");
    // The agent goes quiet past its lease and is reaped: its late chunk is not part of the log.
    std::thread::sleep(Duration::from_millis(600));
    assert!(store.reap_dispatch(id, claimed.token, &json!({"lost": "gone"})).unwrap());
    let late = store.add_log_chunk(id, claimed.token, "logs/k/3", 7);
    assert!(matches!(late, Err(StoreError::Fenced { .. })), "{late:?}");
    store.add_owner_log_chunk(&of, "logs/k/note", 20).unwrap();
    let keys: Vec<String> = store.log_chunks(&of, 0).unwrap().into_iter().map(|c| c.key).collect();
    assert_eq!(keys, ["logs/k/1", "logs/k/2", "logs/k/note"]);
    // Another attempt's log is its own.
    let other = LogChunkOf { attempt: 2, ..of };
    assert!(store.log_chunks(&other, 0).unwrap().is_empty());
}
