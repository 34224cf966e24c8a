//! Content hashes of model files and folders, and their copies in the content store.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// What a model path holds: its hash, `file` or `dir`, and its size in bytes.
pub struct Content {
    pub hash: String,
    pub kind: &'static str,
    pub size: u64,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn file_hash(path: &Path) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut file = fs::File::open(path)?;
    let size = io::copy(&mut file, &mut hasher)?;
    Ok((hex(&hasher.finalize()), size))
}

/// Every file under `dir`, as paths relative to it, sorted.
fn files_under(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        for entry in fs::read_dir(dir.join(&rel))? {
            let entry = entry?;
            let rel = rel.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                pending.push(rel);
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// SHA-256 of a file; of a folder, SHA-256 over its sorted relative paths and their files'
/// hashes, so the same tree has the same hash wherever it lies.
///
/// # Errors
/// Fails when `path` cannot be read.
pub fn hash(path: &Path) -> io::Result<Content> {
    if !path.is_dir() {
        let (hash, size) = file_hash(path)?;
        return Ok(Content {
            hash,
            kind: "file",
            size,
        });
    }
    let mut hasher = Sha256::new();
    let mut size = 0;
    for rel in files_under(path)? {
        let (h, s) = file_hash(&path.join(&rel))?;
        size += s;
        hasher.update(rel.to_string_lossy().as_bytes());
        hasher.update(b"\0");
        hasher.update(h.as_bytes());
        hasher.update(b"\n");
    }
    Ok(Content {
        hash: hex(&hasher.finalize()),
        kind: "dir",
        size,
    })
}

/// Copies `path` into the content store under `root` (`<root>/sha256/<2 hex>/<hash>`), once.
/// Returns where the copy is.
///
/// # Errors
/// Fails when the copy cannot be written.
pub fn keep(root: &Path, path: &Path, hash: &str) -> io::Result<PathBuf> {
    let target = root.join("sha256").join(&hash[..2]).join(hash);
    if target.exists() {
        return Ok(target);
    }
    let parent = target.parent().unwrap_or(root);
    fs::create_dir_all(parent)?;
    // Copy beside the target and rename, so a crash never leaves a half copy under the hash.
    let partial = parent.join(format!(".{hash}.{}", std::process::id()));
    if path.is_dir() {
        for rel in files_under(path)? {
            let to = partial.join(&rel);
            if let Some(p) = to.parent() {
                fs::create_dir_all(p)?;
            }
            fs::copy(path.join(&rel), to)?;
        }
        fs::create_dir_all(&partial)?;
    } else {
        fs::copy(path, &partial)?;
    }
    match fs::rename(&partial, &target) {
        Ok(()) => Ok(target),
        // Another process kept the same content meanwhile.
        Err(_) if target.exists() => {
            let _ = fs::remove_dir_all(&partial).or_else(|_| fs::remove_file(&partial));
            Ok(target)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_hashes_the_same_wherever_it_lies() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [a.path(), b.path()] {
            fs::create_dir_all(d.join("sub")).unwrap();
            fs::write(d.join("sub/w.bin"), "weights").unwrap();
            fs::write(d.join("meta.json"), "{}").unwrap();
        }
        assert_eq!(hash(a.path()).unwrap().hash, hash(b.path()).unwrap().hash);
        fs::write(b.path().join("meta.json"), "{\"v\":2}").unwrap();
        assert_ne!(hash(a.path()).unwrap().hash, hash(b.path()).unwrap().hash);
        let store = tempfile::tempdir().unwrap();
        let h = hash(a.path()).unwrap().hash;
        let kept = keep(store.path(), a.path(), &h).unwrap();
        assert_eq!(
            fs::read_to_string(kept.join("sub/w.bin")).unwrap(),
            "weights"
        );
    }
}
