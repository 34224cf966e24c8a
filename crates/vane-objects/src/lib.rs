//! Where vane keeps task logs and the content store, behind one interface ([`Objects`]): a
//! folder (the state folder on one machine, or one every host mounts) or an S3-compatible
//! object store (AWS S3, MinIO, Ceph, R2), so agents on hosts that share no disk ship logs and
//! artifacts to one place.
//!
//! Why not the `object_store` crate (Apache Arrow), the usual choice in Rust: it is async, and
//! with its `aws` feature (0.14.2, measured with `cargo tree`) it adds 62 crates vane does not
//! already build — `reqwest`, `hyper`, `h2`, `tower`, `quick-xml`, `url` with the ICU tables,
//! and `aws-lc-sys`, a second TLS crypto library built from C — for five requests vane makes (PUT, GET, HEAD, DELETE,
//! ListObjectsV2) from threads that block anyway. This client is those requests, AWS Signature
//! V4 over `sha2` (HMAC is 15 lines), and `vane-net`'s HTTP/1.1 over `rustls`, all of which
//! vane already builds; its signing is checked against AWS's published example, and the whole
//! backend against a real S3-compatible server (moto) in the tests.

mod local;
mod s3;
mod sigv4;
#[cfg(feature = "s3-test")]
pub mod testing;

use std::path::Path;
use std::sync::Arc;

pub use local::LocalDir;
pub use s3::S3;

/// Why a storage operation failed, in words a person can act on.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ObjectError(pub String);

impl ObjectError {
    fn io(what: impl std::fmt::Display, e: &std::io::Error) -> Self {
        Self(format!("{what}: {e}"))
    }
}

/// Keys are `/`-separated relative paths, the same in every backend.
pub trait Objects: Send + Sync + std::fmt::Debug {
    /// Where this is, for messages: `/srv/vane/logs`, `s3://bucket/prefix at http://minio:9000`.
    fn location(&self) -> String;
    /// Writes `body` as `key`, replacing what was there; readers see all of it or none.
    fn put(&self, key: &str, body: &[u8]) -> Result<(), ObjectError>;
    /// Writes the file at `path` as `key`, without holding it in memory.
    fn put_file(&self, key: &str, path: &Path) -> Result<(), ObjectError>;
    /// The object, or `None` when there is no such key.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ObjectError>;
    /// Writes the object to `path` (beside it first, then renamed into place); `false` when
    /// there is no such key.
    fn get_to_file(&self, key: &str, path: &Path) -> Result<bool, ObjectError>;
    fn exists(&self, key: &str) -> Result<bool, ObjectError>;
    /// Every key that starts with `prefix`, sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectError>;
    /// Removes `key`; removing a key that does not exist is not an error.
    fn delete(&self, key: &str) -> Result<(), ObjectError>;
}

/// Opens the storage at `url`: `s3://bucket/prefix?endpoint=…&region=…`, or an absolute
/// folder (`/srv/vane`, `file:///srv/vane`).
///
/// # Errors
/// The URL is neither, or an S3 URL misses what it needs (credentials, a bucket).
pub fn open(url: &str) -> Result<Arc<dyn Objects>, ObjectError> {
    if url.starts_with("s3://") {
        return Ok(Arc::new(S3::from_url(url, &|name| {
            std::env::var(name).ok()
        })?));
    }
    let path = url.strip_prefix("file://").unwrap_or(url);
    if !Path::new(path).is_absolute() {
        return Err(ObjectError(format!(
            "storage `{url}` is neither s3://bucket/prefix nor an absolute folder"
        )));
    }
    Ok(Arc::new(LocalDir::new(path)))
}

/// Checks a key: relative, `/`-separated, no empty, `.` or `..` segment.
fn check_key(key: &str) -> Result<(), ObjectError> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        || key.contains('\0');
    if bad {
        return Err(ObjectError(format!(
            "`{key}` is not a storage key: keys are relative paths like `logs/a/b`, without empty, `.` or `..` parts"
        )));
    }
    Ok(())
}

/// Uploads every file below `dir` as `prefix/relative/path`.
///
/// # Errors
/// A file cannot be read or written.
pub fn put_tree(objects: &dyn Objects, prefix: &str, dir: &Path) -> Result<(), ObjectError> {
    for relative in files_below(dir)? {
        let key = format!("{prefix}/{}", relative.join("/"));
        objects.put_file(&key, &dir.join(relative.join("/")))?;
    }
    Ok(())
}

/// Downloads every object below `prefix/` into `dir`, as the folders their keys name.
///
/// # Errors
/// An object cannot be read or a file written.
pub fn get_tree(objects: &dyn Objects, prefix: &str, dir: &Path) -> Result<(), ObjectError> {
    let below = format!("{prefix}/");
    std::fs::create_dir_all(dir).map_err(|e| ObjectError::io(dir.display(), &e))?;
    for key in objects.list(&below)? {
        let relative = &key[below.len()..];
        objects.get_to_file(&key, &dir.join(relative))?;
    }
    Ok(())
}

/// The files below `dir` as lists of path segments, sorted.
fn files_below(dir: &Path) -> Result<Vec<Vec<String>>, ObjectError> {
    fn walk(dir: &Path, at: &[String], out: &mut Vec<Vec<String>>) -> Result<(), ObjectError> {
        let entries = std::fs::read_dir(dir).map_err(|e| ObjectError::io(dir.display(), &e))?;
        for entry in entries {
            let entry = entry.map_err(|e| ObjectError::io(dir.display(), &e))?;
            let mut here = at.to_vec();
            here.push(entry.file_name().to_string_lossy().into_owned());
            // Following symlinks: a link to data is the data.
            let path = entry.path();
            let meta = std::fs::metadata(&path).map_err(|e| ObjectError::io(path.display(), &e))?;
            if meta.is_dir() {
                walk(&path, &here, out)?;
            } else {
                out.push(here);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, &[], &mut out)?;
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_relative_paths_without_tricks() {
        for good in [
            "a",
            "logs/d/run-1/t.1/0000000001-00000000",
            "sha256/ab/abc.tree",
        ] {
            assert!(check_key(good).is_ok(), "{good}");
        }
        for bad in ["", "/etc/passwd", "a//b", "a/../b", "./a", "a/"] {
            let e = check_key(bad).unwrap_err().to_string();
            assert!(e.contains("not a storage key"), "{bad}: {e}");
        }
    }

    #[test]
    fn only_s3_urls_and_absolute_folders_open() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        assert!(
            open(&url)
                .unwrap()
                .location()
                .ends_with(&*dir.path().to_string_lossy())
        );
        let e = open("relative/folder").unwrap_err().to_string();
        assert!(e.contains("neither s3://"), "{e}");
    }
}
