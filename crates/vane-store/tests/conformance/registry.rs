// The model registry: versions, stages, the ledger, rollout decisions and the rollout lock.

use chrono::{Duration, Utc};
use serde_json::json;
use vane_store::*;

use super::fixtures::{run, set_state};
fn register(store: &S, run: RunId, hash: &str) -> i64 {
    store
        .register_model_version(&NewModelVersion {
            model: "churn",
            hash,
            kind: "file",
            size: 3,
            path: "/models/m.json",
            stored: None,
            run,
            task_id: "rollout",
            attempt: 1,
        })
        .unwrap()
}

fn promote(store: &S, version: i64) -> Result<()> {
    store.set_stage(&StageChange {
        model: "churn",
        version,
        to_stage: "production",
        actor: "user alice",
        run: None,
        reason: Some("test"),
        evidence: &json!({ "gates": [] }),
    })
}

fn stage_row(run: RunId, version: i64, status: StageStatus) -> RolloutStage {
    RolloutStage {
        run_id: run,
        task_id: "rollout".into(),
        stage: "canary".into(),
        model: "churn".into(),
        version,
        status,
        detail: None,
        evidence: json!({}),
        decided_by: None,
        reason: None,
        updated_at: Utc::now(),
    }
}

pub(crate) fn one_production_version_at_a_time_and_the_ledger_answers_when(db: &Db) {
    let store = db.open();
    let r = run(&*store, "churn", 23, &["rollout"]);
    let v1 = register(&*store, r, "aa");
    assert_eq!(register(&*store, r, "aa"), v1, "same content, same version");
    let v2 = register(&*store, r, "bb");
    assert_eq!((v1, v2), (1, 2));
    promote(&*store, v1).unwrap();
    promote(&*store, v2).unwrap();
    let versions = store.model_versions(Some("churn")).unwrap();
    let stages: Vec<(i64, &str)> = versions
        .iter()
        .map(|v| (v.version, v.stage.as_str()))
        .collect();
    assert_eq!(stages, [(2, "production"), (1, "archived")]);
    assert_eq!(store.production("churn").unwrap().unwrap().version, 2);
    let ledger = store.ledger(Some("churn")).unwrap();
    let moves: Vec<(i64, Option<&str>, &str)> = ledger
        .iter()
        .map(|e| (e.version, e.from_stage.as_deref(), e.to_stage.as_str()))
        .collect();
    assert_eq!(
        moves,
        [
            (1, None, "registered"),
            (2, None, "registered"),
            (1, Some("registered"), "production"),
            (1, Some("production"), "archived"),
            (2, Some("registered"), "production"),
        ]
    );
    assert_eq!(ledger[2].evidence, json!({ "gates": [] }));
    // An automatic rollback puts back the version that never left production: it keeps its
    // since and by, and only the ledger records the rollback.
    let live = store.production("churn").unwrap().unwrap();
    store
        .set_stage(&StageChange {
            model: "churn",
            version: 2,
            to_stage: "production",
            actor: "run 9",
            run: Some(r),
            reason: Some("rolled back: canary gate failed"),
            evidence: &json!({}),
        })
        .unwrap();
    let kept = store.production("churn").unwrap().unwrap();
    assert_eq!((kept.since, &kept.actor), (live.since, &live.actor));
    let ledger = store.ledger(Some("churn")).unwrap();
    assert_eq!(ledger.last().unwrap().reason.as_deref(), Some("rolled back: canary gate failed"));
    let v1_live = ledger.iter().find(|e| e.to_stage == "production").unwrap();
    assert_eq!(production_at(&ledger, "churn", v1_live.at), Some(1));
    let before = ledger[0].at - Duration::seconds(1);
    assert_eq!(production_at(&ledger, "churn", before), None);
    assert_eq!(production_at(&ledger, "churn", Utc::now()), Some(2));
    assert!(matches!(
        store.set_stage(&StageChange {
            model: "churn",
            version: 9,
            to_stage: "canary",
            actor: "user bob",
            run: None,
            reason: None,
            evidence: &json!({}),
        }),
        Err(StoreError::NotFound(_))
    ));
}

pub(crate) fn decisions_are_per_version_and_a_persons_answer_is_kept(db: &Db) {
    let store = db.open();
    let r = run(&*store, "churn", 23, &["rollout"]);
    set_state(&*store, r, RunState::Running);
    store.set_rollout_stage(&stage_row(r, 1, StageStatus::Waiting)).unwrap();
    store
        .decide_rollout(r, None, Decision::Approve, "alice", None)
        .unwrap();
    // A retry writing the same stage of the same version does not undo the approval.
    store.set_rollout_stage(&stage_row(r, 1, StageStatus::Running)).unwrap();
    // Another version of the same stage is a row of its own.
    store.set_rollout_stage(&stage_row(r, 2, StageStatus::Waiting)).unwrap();
    let rows = store.rollout_stages(Some(r)).unwrap();
    let by: Vec<(i64, &str)> = rows
        .iter()
        .map(|s| (s.version, s.status.as_str()))
        .collect();
    assert_eq!(by, [(1, "approved"), (2, "waiting")]);
    assert_eq!(store.expire_waiting(r, "rollout", "ended").unwrap(), 1);
    assert!(
        store
            .decide_rollout(r, None, Decision::Approve, "bob", None)
            .unwrap()
            .is_empty(),
        "an expired stage cannot be answered"
    );
}

pub(crate) fn a_stage_of_a_run_that_ended_cannot_be_answered(db: &Db) {
    let store = db.open();
    let r = run(&*store, "churn", 23, &["rollout"]);
    store.set_rollout_stage(&stage_row(r, 1, StageStatus::Waiting)).unwrap();
    set_state(&*store, r, RunState::Running);
    set_state(&*store, r, RunState::Failed);
    assert!(
        store
            .decide_rollout(r, None, Decision::Approve, "alice", None)
            .unwrap()
            .is_empty()
    );
}

/// A killed attempt leaves its stage `waiting`; once the run ended nobody can answer it, so it
/// is no `approval_waiting` event.
pub(crate) fn only_a_running_runs_stage_waits_for_approval(db: &Db) {
    let store = db.open();
    let r = run(&*store, "churn", 23, &["rollout"]);
    set_state(&*store, r, RunState::Running);
    store.set_rollout_stage(&stage_row(r, 1, StageStatus::Waiting)).unwrap();
    let later = Utc::now() + Duration::minutes(1);
    assert_eq!(store.approvals_waiting(later).unwrap().len(), 1);
    set_state(&*store, r, RunState::Failed);
    assert_eq!(store.approvals_waiting(later).unwrap(), []);
}

pub(crate) fn one_rollout_of_a_model_holds_the_lock(db: &Db) {
    let store = db.open();
    let a = run(&*store, "churn", 1, &["rollout"]);
    let b = run(&*store, "churn", 2, &["rollout"]);
    set_state(&*store, a, RunState::Running);
    set_state(&*store, b, RunState::Running);
    assert_eq!(
        store.claim_rollout_lock("churn", a, "rollout", 1).unwrap(),
        None
    );
    let holder = store.claim_rollout_lock("churn", b, "rollout", 1).unwrap();
    assert_eq!(holder.map(|h| (h.run_id, h.attempt)), Some((a, 1)));
    // Another model is not held up, and a retry of the holder takes the lock over.
    assert_eq!(
        store.claim_rollout_lock("other", b, "rollout", 1).unwrap(),
        None
    );
    assert_eq!(
        store.claim_rollout_lock("churn", a, "rollout", 2).unwrap(),
        None
    );
    // Released, or held by a run that ended (killed), the lock is free again.
    store.release_rollout_lock("churn", a, "rollout").unwrap();
    assert_eq!(
        store.claim_rollout_lock("churn", b, "rollout", 1).unwrap(),
        None
    );
    set_state(&*store, b, RunState::Failed);
    assert_eq!(
        store.claim_rollout_lock("churn", a, "rollout", 3).unwrap(),
        None
    );
}

pub(crate) fn a_person_answers_only_a_waiting_stage(db: &Db) {
    let store = db.open();
    let r = run(&*store, "churn", 23, &["rollout"]);
    set_state(&*store, r, RunState::Running);
    let v = register(&*store, r, "aa");
    let mut stage = stage_row(r, v, StageStatus::Passed);
    store.set_rollout_stage(&stage).unwrap();
    assert!(
        store
            .decide_rollout(r, None, Decision::Approve, "alice", None)
            .unwrap()
            .is_empty()
    );
    stage.status = StageStatus::Waiting;
    store.set_rollout_stage(&stage).unwrap();
    // A second stage, reached later: answered in the order the rollout reached them.
    let mut shadow = stage_row(r, v, StageStatus::Waiting);
    shadow.stage = "a-shadow".into();
    store.set_rollout_stage(&shadow).unwrap();
    let decided = store
        .decide_rollout(r, None, Decision::Reject, "bob", Some("no"))
        .unwrap();
    let answered: Vec<(&str, Option<&str>)> = decided
        .iter()
        .map(|s| (s.stage.as_str(), s.decided_by.as_deref()))
        .collect();
    assert_eq!(
        answered,
        [("canary", Some("bob")), ("a-shadow", Some("bob"))]
    );
    let listed: Vec<(String, String)> = store
        .rollout_stages(Some(r))
        .unwrap()
        .into_iter()
        .map(|s| (s.stage, s.status.to_string()))
        .collect();
    assert_eq!(
        listed,
        [
            ("canary".into(), "rejected".into()),
            ("a-shadow".into(), "rejected".into())
        ]
    );
}

pub(crate) fn model_metrics_are_replaced_per_eval_data(db: &Db) {
    let store = db.open();
    let r = run(&*store, "churn", 23, &["rollout"]);
    let v = register(&*store, r, "aa");
    let metrics = |auc: f64| vec![("auc".to_owned(), auc), ("loss".to_owned(), 0.5)];
    store
        .record_model_metrics("churn", v, "eval1", &metrics(0.7), r)
        .unwrap();
    store
        .record_model_metrics("churn", v, "eval1", &metrics(0.8), r)
        .unwrap();
    let mut got = store.model_metrics("churn", v).unwrap();
    got.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        got,
        [
            ("eval1".to_owned(), "auc".to_owned(), 0.8),
            ("eval1".to_owned(), "loss".to_owned(), 0.5)
        ]
    );
}

/// Two schedulers' rollouts of one model reach the lock at the same moment: one holds it, the
/// other is told who does. Repeated, since one try may not overlap.
pub(crate) fn two_rollouts_racing_for_one_model_get_one_lock(db: &Db) {
    let setup = db.open();
    for round in 0..10 {
        let model = format!("m{round}");
        let a = run(&*setup, "churn", 2 * round + 1, &["rollout"]);
        let b = run(&*setup, "churn", 2 * round + 2, &["rollout"]);
        set_state(&*setup, a, RunState::Running);
        set_state(&*setup, b, RunState::Running);
        let barrier = std::sync::Barrier::new(2);
        let outcomes: Vec<(RunId, Option<RolloutLock>)> = std::thread::scope(|s| {
            let racers: Vec<_> = [a, b]
                .into_iter()
                .map(|run| {
                    let (barrier, model) = (&barrier, &model);
                    let store = db.open();
                    s.spawn(move || {
                        barrier.wait();
                        let got = store.claim_rollout_lock(model, run, "rollout", 1).unwrap();
                        (run, got)
                    })
                })
                .collect();
            racers.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<RunId> = outcomes
            .iter()
            .filter(|(_, holder)| holder.is_none())
            .map(|(run, _)| *run)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        let loser = outcomes.iter().find(|(_, h)| h.is_some()).unwrap();
        assert_eq!(loser.1.as_ref().unwrap().run_id, winners[0]);
    }
}

/// Two people promoting two versions at once: one ends in production, the other archived by
/// it, and the ledger says so once.
pub(crate) fn two_promotions_racing_leave_one_production_version(db: &Db) {
    let setup = db.open();
    let r = run(&*setup, "churn", 23, &["rollout"]);
    let old = register(&*setup, r, "old");
    promote(&*setup, old).unwrap();
    let versions: Vec<i64> = ["aa", "bb"]
        .iter()
        .map(|h| register(&*setup, r, h))
        .collect();
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        for &v in &versions {
            let store = db.open();
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                promote(&*store, v).unwrap();
            });
        }
    });
    let stages: Vec<(i64, String)> = setup
        .model_versions(Some("churn"))
        .unwrap()
        .into_iter()
        .map(|v| (v.version, v.stage))
        .collect();
    let live: Vec<i64> = stages
        .iter()
        .filter(|(_, s)| s == "production")
        .map(|(v, _)| *v)
        .collect();
    assert_eq!(live.len(), 1, "{stages:?}");
    let archived = setup
        .ledger(Some("churn"))
        .unwrap()
        .into_iter()
        .filter(|e| e.to_stage == "archived")
        .map(|e| e.version)
        .collect::<Vec<_>>();
    let first = versions.iter().find(|v| **v != live[0]).unwrap();
    assert_eq!(archived, [old, *first], "each outgoing version archived once");
}
