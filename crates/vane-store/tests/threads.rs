//! Store calls from async code run on the store's own threads.

use std::sync::{Arc, Mutex};

use vane_store::{RunFilter, SqliteStore, Store, StoreError, StoreThreads};

fn runs(store: &dyn Store) -> usize {
    store.runs(&RunFilter::default()).unwrap().len()
}

#[tokio::test]
async fn calls_run_off_the_callers_thread_and_a_panic_reaches_the_caller() {
    let threads = StoreThreads::from_store(Box::new(SqliteStore::open_in_memory().unwrap()));
    let caller = std::thread::current().id();
    let (ran_on, in_runtime) = threads
        .call(|_| {
            (
                std::thread::current().id(),
                tokio::runtime::Handle::try_current().is_ok(),
            )
        })
        .await;
    assert_ne!(ran_on, caller);
    assert!(!in_runtime, "a store thread is outside any runtime");

    let panicking = threads.clone();
    let joined = tokio::spawn(async move { panicking.call(|_| panic!("boom")).await }).await;
    let panic = joined.unwrap_err().into_panic();
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"boom"));
    // The only thread survived the panic and still serves.
    assert_eq!(threads.call(runs).await, 0);
}

#[test]
fn each_thread_opens_its_own_store_on_itself() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vane.db");
    let openers = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&openers);
    let threads = StoreThreads::open(3, move || {
        seen.lock().unwrap().push(std::thread::current().id());
        Ok(Box::new(SqliteStore::open(&db)?) as Box<dyn Store + Send>)
    })
    .unwrap();
    let mut opened = openers.lock().unwrap().clone();
    opened.sort_by_key(|id| format!("{id:?}"));
    opened.dedup();
    assert_eq!(opened.len(), 3);
    assert!(!opened.contains(&std::thread::current().id()));
    assert_eq!(threads.call_blocking(runs), 0);
}

#[test]
fn a_store_that_cannot_be_opened_is_an_error() {
    let opened = StoreThreads::open(2, || Err(StoreError::NotFound("the database".into())));
    assert!(matches!(opened, Err(StoreError::NotFound(_))));
}

#[tokio::test]
async fn inline_calls_run_on_the_callers_thread() {
    let threads = StoreThreads::inline(Box::new(SqliteStore::open_in_memory().unwrap()));
    let ran_on = threads.call(|_| std::thread::current().id()).await;
    assert_eq!(ran_on, std::thread::current().id());
}
