//! One suite, run on each backend: a folder, and S3 as a real S3-compatible server (moto)
//! speaks it.

use std::fs;
use std::path::Path;

use vane_objects::testing::S3Server;
use vane_objects::{LocalDir, Objects, get_tree, put_tree};

fn suite(store: &dyn Objects, scratch: &Path) {
    // Missing keys are `None`, not errors.
    assert_eq!(store.get("logs/none").unwrap(), None);
    assert!(!store.exists("logs/none").unwrap());
    store.delete("logs/none").unwrap();

    // Put, read back, overwrite.
    store.put("logs/a/1", b"first").unwrap();
    assert_eq!(
        store.get("logs/a/1").unwrap().as_deref(),
        Some(&b"first"[..])
    );
    store.put("logs/a/1", b"second & <more>").unwrap();
    assert_eq!(
        store.get("logs/a/1").unwrap().as_deref(),
        Some(&b"second & <more>"[..])
    );
    assert!(store.exists("logs/a/1").unwrap());
    store.put("logs/a/2", b"").unwrap();
    assert_eq!(store.get("logs/a/2").unwrap().as_deref(), Some(&b""[..]));

    // A key with characters a URL must encode, and XML must escape in a listing.
    store.put("logs/odd name & more+é", b"x").unwrap();
    assert_eq!(
        store.get("logs/odd name & more+é").unwrap().as_deref(),
        Some(&b"x"[..])
    );

    // Listing: by prefix, sorted, across more than one page of S3's 1,000.
    for i in 0..1_050 {
        store.put(&format!("many/{i:05}"), b"").unwrap();
    }
    let listed = store.list("many/").unwrap();
    assert_eq!(listed.len(), 1_050);
    assert_eq!(listed[0], "many/00000");
    assert_eq!(listed[1_049], "many/01049");
    assert_eq!(store.list("many/0104").unwrap().len(), 10);
    assert_eq!(
        store.list("logs/").unwrap(),
        ["logs/a/1", "logs/a/2", "logs/odd name & more+é"]
    );
    assert!(store.list("nothing/").unwrap().is_empty());

    // Files up and down, larger than any one read.
    let big: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let source = scratch.join("big.bin");
    fs::write(&source, &big).unwrap();
    store.put_file("content/big", &source).unwrap();
    let back = scratch.join("down/big.bin");
    assert!(store.get_to_file("content/big", &back).unwrap());
    assert_eq!(fs::read(&back).unwrap(), big);
    assert!(
        !store
            .get_to_file("content/none", &scratch.join("none"))
            .unwrap()
    );
    assert!(!scratch.join("none").exists());

    // Folders as trees of objects.
    let tree = scratch.join("model");
    fs::create_dir_all(tree.join("weights")).unwrap();
    fs::write(tree.join("config.json"), "{}").unwrap();
    fs::write(tree.join("weights/layer1.bin"), [1u8, 2, 3]).unwrap();
    put_tree(store, "content/model", &tree).unwrap();
    let restored = scratch.join("restored");
    get_tree(store, "content/model", &restored).unwrap();
    assert_eq!(
        fs::read(restored.join("weights/layer1.bin")).unwrap(),
        [1, 2, 3]
    );
    assert_eq!(
        fs::read_to_string(restored.join("config.json")).unwrap(),
        "{}"
    );

    // Delete.
    store.delete("logs/a/1").unwrap();
    assert_eq!(store.get("logs/a/1").unwrap(), None);

    // Keys that are not relative paths are refused before anything is sent.
    for bad in ["/abs", "a/../b", "a//b"] {
        let e = store.put(bad, b"x").unwrap_err().to_string();
        assert!(e.contains("not a storage key"), "{bad}: {e}");
    }
}

#[test]
fn a_folder_keeps_objects_as_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalDir::new(dir.path().join("store"));
    suite(&store, dir.path());
    // Nothing half-written is left beside the objects.
    let leftovers: Vec<_> = fs::read_dir(dir.path().join("store/logs/a"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["2"]);
}

#[test]
fn s3_keeps_objects_in_a_bucket_under_a_prefix() {
    let server = S3Server::start("127.0.0.1".parse().unwrap());
    let store = server.bucket("vane-test", "team/prod");
    let dir = tempfile::tempdir().unwrap();
    suite(&store, dir.path());
    // The prefix is where everything went: a store on the bucket's root sees it below.
    let root = server.bucket("vane-test", "");
    assert!(root.exists("team/prod/logs/a/2").unwrap());
    assert!(!root.exists("logs/a/2").unwrap());
}

#[test]
fn s3_errors_say_what_to_fix() {
    let server = S3Server::start("127.0.0.1".parse().unwrap());
    let missing =
        vane_objects::S3::from_url(&server.url("no-such-bucket", ""), &|name| match name {
            "AWS_ACCESS_KEY_ID" => Some("a".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("b".into()),
            _ => None,
        })
        .unwrap();
    let e = missing.put("k", b"x").unwrap_err().to_string();
    assert!(
        e.contains("NoSuchBucket") && e.contains("create bucket `no-such-bucket` first"),
        "{e}"
    );
    // Nobody listening: the error names where it tried.
    let nobody =
        vane_objects::S3::from_url("s3://b?endpoint=http://127.0.0.1:9", &|name| match name {
            "AWS_ACCESS_KEY_ID" => Some("a".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("b".into()),
            _ => None,
        })
        .unwrap();
    let e = nobody.get("k").unwrap_err().to_string();
    assert!(e.contains("127.0.0.1:9"), "{e}");
}
