//! Content hashing, the content store, and task cache keys.
//!
//! A file's hash is the SHA-256 of its bytes. A folder's is the SHA-256 over its files in
//! sorted order of their relative paths, each as `path NUL hash NL`, so renaming a file inside
//! changes the hash while the folder's own location and timestamps do not.
//! The content store keeps one copy per hash at `<store>/sha256/<first 2 hex>/<hash>`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use vane_store::ArtifactKind;

/// A file or folder as hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    pub hash: String,
    pub kind: ArtifactKind,
    /// Bytes (of a folder: of all its files).
    pub size: u64,
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 of some bytes.
pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hash_file(path: &Path) -> io::Result<(String, u64)> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let size = io::copy(&mut file, &mut hasher)?;
    Ok((hex(&hasher.finalize()), size))
}

/// The files below `dir`, as paths relative to it, sorted.
fn files_below(dir: &Path) -> io::Result<Vec<PathBuf>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            // Following symlinks: a link to data is the data, as the task read it.
            if fs::metadata(&path)?.is_dir() {
                walk(root, &path, out)?;
            } else {
                out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

/// Hashes the file or folder at `path`.
///
/// # Errors
/// Fails when it does not exist or cannot be read.
pub fn hash_path(path: &Path) -> io::Result<Hashed> {
    if !fs::metadata(path)?.is_dir() {
        let (hash, size) = hash_file(path)?;
        return Ok(Hashed {
            hash,
            kind: ArtifactKind::File,
            size,
        });
    }
    let mut hasher = Sha256::new();
    let mut size = 0;
    for relative in files_below(path)? {
        let (hash, bytes) = hash_file(&path.join(&relative))?;
        size += bytes;
        hasher.update(relative.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(hash.as_bytes());
        hasher.update([b'\n']);
    }
    Ok(Hashed {
        hash: hex(&hasher.finalize()),
        kind: ArtifactKind::Dir,
        size,
    })
}

/// Where the content store keeps the copy of content `hash`.
pub fn stored_path(store: &Path, hash: &str) -> PathBuf {
    store
        .join("sha256")
        .join(hash.get(..2).unwrap_or(hash))
        .join(hash)
}

/// Copies a file or folder (recursively) to `to`, which must not exist.
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    if !fs::metadata(from)?.is_dir() {
        fs::copy(from, to)?;
        return Ok(());
    }
    fs::create_dir_all(to)?;
    for relative in files_below(from)? {
        let target = to.join(&relative);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(from.join(&relative), target)?;
    }
    Ok(())
}

/// Keeps a copy of `path` (hashed as `hash`) in the content store, once per hash; returns where.
///
/// # Errors
/// Fails when the copy cannot be written.
pub fn store_copy(store: &Path, path: &Path, hash: &str) -> io::Result<PathBuf> {
    let target = stored_path(store, hash);
    if target.exists() {
        return Ok(target);
    }
    let parent = target.parent().unwrap_or(store);
    fs::create_dir_all(parent)?;
    // Copied beside the target and renamed into place, so a crash or a concurrent run never
    // leaves a half-written copy under the final name.
    let partial = parent.join(format!(".{hash}.{}.partial", std::process::id()));
    let _ = remove(&partial);
    copy_tree(path, &partial)?;
    match fs::rename(&partial, &target) {
        Ok(()) => Ok(target),
        // Another process stored the same content first: theirs is as good as ours.
        Err(_) if target.exists() => {
            let _ = remove(&partial);
            Ok(target)
        }
        Err(e) => Err(e),
    }
}

fn remove(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Puts a stored copy back at `path`, replacing what is there.
///
/// # Errors
/// Fails when the copy is gone or `path` cannot be written.
pub fn restore(stored: &Path, path: &Path) -> io::Result<()> {
    if !stored.exists() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("the stored copy {} is gone", stored.display()),
        ));
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    remove(path)?;
    copy_tree(stored, path)
}

/// What a task's cache key is computed from.
#[derive(Debug, Clone)]
pub struct CacheInputs<'a> {
    /// The command with `run_id` and `attempt` rendered as fixed placeholders.
    pub command: &'a str,
    pub env: &'a [(String, String)],
    pub params: &'a [(String, String)],
    /// Input names and content hashes.
    pub inputs: &'a [(String, String)],
    pub outputs: &'a [String],
}

/// Hex SHA-256 over everything that decides what a task writes. Each part is length-prefixed,
/// so no two different lists of strings hash the same.
pub fn cache_key(of: &CacheInputs<'_>) -> String {
    let mut hasher = Sha256::new();
    let mut put = |s: &str| {
        hasher.update((s.len() as u64).to_le_bytes());
        hasher.update(s.as_bytes());
    };
    put("vane cache key 1");
    put(of.command);
    for (section, pairs) in [
        ("env", of.env),
        ("params", of.params),
        ("inputs", of.inputs),
    ] {
        put(section);
        let mut sorted: Vec<&(String, String)> = pairs.iter().collect();
        sorted.sort();
        for (k, v) in sorted {
            put(k);
            put(v);
        }
    }
    put("outputs");
    let mut outputs: Vec<&String> = of.outputs.iter().collect();
    outputs.sort();
    for name in outputs {
        put(name);
    }
    hex(&hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_hash_follows_names_and_contents_not_location() {
        let dir = tempfile::tempdir().unwrap();
        for root in ["a", "b"] {
            fs::create_dir_all(dir.path().join(root).join("sub")).unwrap();
            fs::write(dir.path().join(root).join("x.txt"), "x").unwrap();
            fs::write(dir.path().join(root).join("sub/y.txt"), "y").unwrap();
        }
        let a = hash_path(&dir.path().join("a")).unwrap();
        assert_eq!(a, hash_path(&dir.path().join("b")).unwrap());
        assert_eq!((a.kind, a.size), (ArtifactKind::Dir, 2));
        fs::rename(dir.path().join("b/x.txt"), dir.path().join("b/z.txt")).unwrap();
        assert_ne!(a.hash, hash_path(&dir.path().join("b")).unwrap().hash);
    }

    #[test]
    fn stored_folders_restore_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("model");
        fs::create_dir_all(src.join("w")).unwrap();
        fs::write(src.join("w/weights.bin"), "123").unwrap();
        let hashed = hash_path(&src).unwrap();
        let store = dir.path().join("store");
        let kept = store_copy(&store, &src, &hashed.hash).unwrap();
        assert_eq!(kept, stored_path(&store, &hashed.hash));
        fs::remove_dir_all(&src).unwrap();
        restore(&kept, &src).unwrap();
        assert_eq!(hash_path(&src).unwrap(), hashed);
    }
}
