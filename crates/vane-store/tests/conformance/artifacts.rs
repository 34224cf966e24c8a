// Artifact versions, lineage and the cache.

use chrono::Utc;
use vane_store::*;

use super::fixtures::{attempt, run};
fn file<'a>(name: &'a str, hash: &'a str) -> NewArtifact<'a> {
    NewArtifact {
        name,
        hash,
        kind: ArtifactKind::File,
        size: 3,
        path: "/data/x",
        stored: None,
    }
}

fn trained(store: &S, on: u32, success: bool) -> AttemptRef {
    let run = run(store, "ml", on, &["train"]);
    attempt(store, run, "train", 1, success);
    AttemptRef {
        run,
        task: "train".into(),
        attempt: 1,
    }
}

pub(crate) fn same_content_is_the_same_version_and_recording_twice_changes_nothing(db: &Db) {
    let store = db.open();
    let a = trained(&*store, 1, true);
    let first = store
        .record_artifacts(&a, Direction::Output, &[file("model", "aa")], Utc::now())
        .unwrap();
    let again = store
        .record_artifacts(&a, Direction::Output, &[file("model", "aa")], Utc::now())
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(first[0].version, 1);
    assert_eq!(first[0].producer.as_ref(), Some(&a));
    let next = store
        .record_artifacts(
            &a,
            Direction::Output,
            &[file("model", "bb"), file("data", "cc")],
            Utc::now(),
        )
        .unwrap();
    let got: Vec<(&str, u32)> = next.iter().map(|v| (v.name.as_str(), v.version)).collect();
    assert_eq!(got, [("model", 2), ("data", 1)], "in the order given");
    assert_eq!(store.artifact_versions(Some("model")).unwrap().len(), 2);
    let all: Vec<(String, u32)> = store
        .artifact_versions(None)
        .unwrap()
        .into_iter()
        .map(|v| (v.name, v.version))
        .collect();
    assert_eq!(
        all,
        [
            ("data".into(), 1),
            ("model".into(), 1),
            ("model".into(), 2)
        ]
    );
    assert_eq!(store.artifact_version("model", None).unwrap().version, 2);
    let links: Vec<String> = store
        .attempt_links(a.run, None)
        .unwrap()
        .into_iter()
        .map(|l| format!("{}:{}", l.artifact.name, l.artifact.version))
        .collect();
    assert_eq!(links, ["data:1", "model:1", "model:2"]);
    assert!(matches!(
        store.artifact_version("model", Some(9)),
        Err(StoreError::NotFound(_))
    ));
}

pub(crate) fn content_read_before_it_is_written_gets_its_writer_as_producer(db: &Db) {
    let store = db.open();
    let reader = trained(&*store, 1, true);
    let read = store
        .record_artifacts(&reader, Direction::Input, &[file("data", "cc")], Utc::now())
        .unwrap();
    assert_eq!(read[0].producer, None);
    let writer = trained(&*store, 2, true);
    let mut kept = file("data", "cc");
    kept.stored = Some("/store/cc");
    let written = store
        .record_artifacts(&writer, Direction::Output, &[kept], Utc::now())
        .unwrap();
    assert_eq!(written[0].id, read[0].id);
    assert_eq!(written[0].producer.as_ref(), Some(&writer));
    assert_eq!(written[0].stored.as_deref(), Some("/store/cc"));
    let links = store.artifact_links(read[0].id).unwrap();
    let uses: Vec<(RunId, Direction)> =
        links.iter().map(|l| (l.attempt.run, l.direction)).collect();
    assert_eq!(
        uses,
        vec![
            (reader.run, Direction::Input),
            (writer.run, Direction::Output)
        ]
    );
}

pub(crate) fn only_a_successful_attempt_with_the_same_key_is_a_cache_hit(db: &Db) {
    let store = db.open();
    let failed = trained(&*store, 1, false);
    store.record_cache_key(&failed, "ml", "k1").unwrap();
    assert_eq!(store.cache_hit("ml", "train", "k1").unwrap(), None);

    let good = trained(&*store, 2, true);
    store.record_cache_key(&good, "ml", "k1").unwrap();
    store
        .record_artifacts(&good, Direction::Output, &[file("model", "dd")], Utc::now())
        .unwrap();
    let (hit, outputs) = store.cache_hit("ml", "train", "k1").unwrap().unwrap();
    assert_eq!(hit, good);
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].artifact.hash, "dd");
    assert_eq!(store.cache_hit("ml", "train", "k2").unwrap(), None);
    assert_eq!(store.cache_hit("other", "train", "k1").unwrap(), None);
}

/// Two schedulers recording new content under one name at once: each content gets its own
/// number, with no gap and no failure.
pub(crate) fn two_writers_of_new_versions_of_one_name_get_distinct_numbers(db: &Db) {
    let setup = db.open();
    let writers: Vec<AttemptRef> = (1..=4).map(|d| trained(&*setup, d, true)).collect();
    let barrier = std::sync::Barrier::new(writers.len());
    std::thread::scope(|s| {
        for (i, writer) in writers.iter().enumerate() {
            let store = db.open();
            let barrier = &barrier;
            s.spawn(move || {
                let hashes: Vec<String> = (0..5).map(|n| format!("{i}-{n}")).collect();
                barrier.wait();
                for hash in &hashes {
                    // Two names, in opposite orders by writer: no deadlock either way.
                    let mut files = vec![file("model", hash), file("report", hash)];
                    if i % 2 == 1 {
                        files.reverse();
                    }
                    store
                        .record_artifacts(writer, Direction::Output, &files, Utc::now())
                        .unwrap();
                }
            });
        }
    });
    for name in ["model", "report"] {
        let numbers: Vec<u32> = setup
            .artifact_versions(Some(name))
            .unwrap()
            .iter()
            .map(|v| v.version)
            .collect();
        assert_eq!(numbers, (1..=20).collect::<Vec<u32>>(), "{name}");
    }
}
