// Work made atomic across store methods ([`AlertStore::atomically`]).

use chrono::Utc;
use vane_store::*;


fn occurrence(rule: &str) -> AlertOccurrence<'_> {
    AlertOccurrence {
        rule,
        kind: "task_failed",
        severity: "warning",
        dag_id: "demo",
        task_id: Some("a"),
        subject: None,
        summary: "exit code 1",
        run: None,
        dag_version: None,
        at: Utc::now(),
        reopen_since: None,
    }
}

fn boom() -> StoreError {
    StoreError::NotFound("boom".into())
}

pub(crate) fn atomic_work_commits_at_its_end_or_not_at_all(db: &Db) {
    let store = db.open();
    // Another process sees only what was committed.
    let other = db.open();
    let keys = [("run_failed:1".to_owned(), Utc::now())];

    let failed = store.atomically(&mut || {
        assert_eq!(store.claim_events(&keys, Utc::now(), Utc::now())?.len(), 1);
        store.raise_alert(&occurrence("r"))?;
        // The methods' own commits did not commit the outer transaction.
        assert!(other.alerts(AlertFilter::default())?.is_empty());
        assert_eq!(other.alert_cursor()?, None);
        Err(boom())
    });
    assert!(matches!(failed, Err(StoreError::NotFound(_))), "{failed:?}");
    assert!(store.alerts(AlertFilter::default()).unwrap().is_empty());
    assert_eq!(store.alert_cursor().unwrap(), None);

    store
        .atomically(&mut || {
            assert_eq!(store.claim_events(&keys, Utc::now(), Utc::now())?.len(), 1);
            store.raise_alert(&occurrence("r"))?;
            assert!(other.alerts(AlertFilter::default())?.is_empty());
            Ok(())
        })
        .unwrap();
    let alerts = other.alerts(AlertFilter::default()).unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].count, 1);
    assert!(other.alert_cursor().unwrap().is_some());
}

pub(crate) fn nested_atomic_work_that_fails_undoes_only_its_own_writes(db: &Db) {
    let store = db.open();
    store
        .atomically(&mut || {
            store.raise_alert(&occurrence("kept"))?;
            let inner = store.atomically(&mut || {
                store.raise_alert(&occurrence("undone"))?;
                Err(boom())
            });
            assert!(inner.is_err());
            // The outer transaction is still open and usable after the inner one failed.
            store.raise_alert(&occurrence("kept"))?;
            Ok(())
        })
        .unwrap();
    let alerts = store.alerts(AlertFilter::default()).unwrap();
    let rules: Vec<_> = alerts.iter().map(|a| (a.rule.as_str(), a.count)).collect();
    assert_eq!(rules, vec![("kept", 2)]);
}
