//! Content hashing, the content store, and task cache keys.
//!
//! A file's hash is the SHA-256 of its bytes. A folder's is the SHA-256 over its files in
//! sorted order of their relative paths, each as `path NUL hash NL`, so renaming a file inside
//! changes the hash while the folder's own location and timestamps do not.
//! The content store keeps one copy per hash at `sha256/<first 2 hex>/<hash>` in the storage.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vane_objects::Objects;

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

/// The content store: one copy of every artifact and model version, by hash, in the storage
/// (`[scheduler] storage`: S3 or a folder), so a cache hit, a rollback or another scheduler
/// finds it from any host. A file is the object `sha256/<first 2 hex>/<hash>`; a folder is
/// the objects below that key, then a marker object `<key>.tree` written last, so a folder
/// half-copied by a crash never counts as kept.
#[derive(Clone)]
pub struct ContentStore {
    /// Where it is, as [`vane_objects::open`] reads it: an absolute folder or `s3://…`.
    pub url: String,
    pub objects: Arc<dyn Objects>,
    /// Where copies fetched from a remote store are kept on this host (a model a rollback
    /// hands to its command as a path).
    pub cache: PathBuf,
}

impl std::fmt::Debug for ContentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

fn content_key(hash: &str) -> String {
    format!("sha256/{}/{hash}", hash.get(..2).unwrap_or(hash))
}

fn storage_error(e: vane_objects::ObjectError) -> io::Error {
    io::Error::other(e.to_string())
}

impl ContentStore {
    /// The content store in folder `dir` (and its fetched copies beside it).
    ///
    /// # Errors
    /// The folder cannot be opened.
    pub fn local(dir: &Path) -> io::Result<Self> {
        let url = std::path::absolute(dir)?.display().to_string();
        Ok(Self {
            objects: vane_objects::open(&url).map_err(storage_error)?,
            cache: dir.with_file_name("artifacts-cache"),
            url,
        })
    }

    /// Whether the store is a folder on this host; then a kept copy's location is its path.
    fn local_dir(&self) -> Option<PathBuf> {
        let path = self.url.strip_prefix("file://").unwrap_or(&self.url);
        Path::new(path).is_absolute().then(|| PathBuf::from(path))
    }

    /// Where the copy of `hash` is, as recorded: its path for a folder store, its URL
    /// otherwise.
    #[must_use]
    pub fn location(&self, hash: &str) -> String {
        let key = content_key(hash);
        match self.local_dir() {
            Some(dir) => dir.join(key).display().to_string(),
            None => {
                let (base, query) = self
                    .url
                    .split_once('?')
                    .map_or((self.url.as_str(), None), |(b, q)| (b, Some(q)));
                let joined = format!("{}/{key}", base.trim_end_matches('/'));
                query.map_or(joined.clone(), |q| format!("{joined}?{q}"))
            }
        }
    }

    /// Keeps a copy of `path` (hashed as `hashed`), once per hash; returns its location.
    ///
    /// # Errors
    /// The copy cannot be written.
    pub fn keep(&self, path: &Path, hashed: &Hashed) -> io::Result<String> {
        let key = content_key(&hashed.hash);
        match hashed.kind {
            ArtifactKind::File => {
                if !self.objects.exists(&key).map_err(storage_error)? {
                    self.objects.put_file(&key, path).map_err(storage_error)?;
                }
            }
            ArtifactKind::Dir => {
                let marker = format!("{key}.tree");
                if !self.objects.exists(&marker).map_err(storage_error)? {
                    vane_objects::put_tree(&*self.objects, &key, path).map_err(storage_error)?;
                    self.objects.put(&marker, b"").map_err(storage_error)?;
                }
            }
        }
        Ok(self.location(&hashed.hash))
    }

    /// Puts the copy of `hash` (of kind `kind`) back at `path`, replacing what is there.
    /// `stored` is where it was recorded; a copy in a folder that still exists is read from
    /// there (the store moved since), otherwise from this store.
    ///
    /// # Errors
    /// The copy is gone or `path` cannot be written.
    pub fn restore(
        &self,
        stored: Option<&str>,
        hash: &str,
        kind: ArtifactKind,
        path: &Path,
    ) -> io::Result<()> {
        if let Some(old) = stored
            .map(Path::new)
            .filter(|p| p.is_absolute() && p.exists())
        {
            return restore_copy(old, path);
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let key = content_key(hash);
        let gone = || {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("the stored copy {} is gone", self.location(hash)),
            )
        };
        match kind {
            ArtifactKind::File => {
                remove(path)?;
                if !self
                    .objects
                    .get_to_file(&key, path)
                    .map_err(storage_error)?
                {
                    return Err(gone());
                }
            }
            ArtifactKind::Dir => {
                if !self
                    .objects
                    .exists(&format!("{key}.tree"))
                    .map_err(storage_error)?
                {
                    return Err(gone());
                }
                remove(path)?;
                vane_objects::get_tree(&*self.objects, &key, path).map_err(storage_error)?;
            }
        }
        Ok(())
    }

    /// Whether the copy of `hash` (of kind `kind`) is kept: where it was recorded, for a folder
    /// that still exists, or in this store. A store out of reach counts as not kept.
    #[must_use]
    pub fn has(&self, stored: Option<&str>, hash: &str, kind: ArtifactKind) -> bool {
        if stored
            .map(Path::new)
            .is_some_and(|p| p.is_absolute() && p.exists())
        {
            return true;
        }
        let key = content_key(hash);
        let key = match kind {
            ArtifactKind::File => key,
            ArtifactKind::Dir => format!("{key}.tree"),
        };
        self.objects.exists(&key).unwrap_or(false)
    }

    /// A path on this host holding the copy of `hash`: the recorded one when it exists (a
    /// folder store), else a copy fetched into [`ContentStore::cache`]; `None` when the
    /// store has no such copy.
    ///
    /// # Errors
    /// The store or the cache cannot be read or written.
    pub fn fetch(&self, stored: Option<&str>, hash: &str) -> io::Result<Option<PathBuf>> {
        if let Some(local) = stored
            .map(PathBuf::from)
            .filter(|p| p.is_absolute() && p.exists())
        {
            return Ok(Some(local));
        }
        let key = content_key(hash);
        if let Some(dir) = self.local_dir() {
            let kept = dir.join(&key).is_file() || dir.join(format!("{key}.tree")).exists();
            return Ok(kept.then(|| dir.join(key)));
        }
        let kind = if self.objects.exists(&key).map_err(storage_error)? {
            ArtifactKind::File
        } else if self
            .objects
            .exists(&format!("{key}.tree"))
            .map_err(storage_error)?
        {
            ArtifactKind::Dir
        } else {
            return Ok(None);
        };
        let target = self.cache.join(&key);
        if target.exists() {
            return Ok(Some(target));
        }
        // Fetched beside the target and renamed into place, so a crash never leaves a
        // half-written copy under the final name.
        let partial = target.with_extension(format!("{}.partial", std::process::id()));
        let fetched = self
            .restore(None, hash, kind, &partial)
            .and_then(|()| fs::rename(&partial, &target));
        if fetched.is_err() {
            let _ = remove(&partial);
        }
        fetched.map(|()| Some(target))
    }
}

/// A declared output of a succeeded attempt, hashed, with where its copy is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptOutput {
    pub name: String,
    pub path: String,
    pub stored: Option<String>,
    pub hashed: Hashed,
}

/// Hashes each declared output (`name`, where the task wrote it) and keeps a copy of it in
/// `content`, on the host that ran the task: the run's owner or an agent.
///
/// # Errors
/// Why the attempt fails: an output missing, unreadable, or one that cannot be kept.
pub fn keep_declared(
    content: &ContentStore,
    declared: Vec<(String, PathBuf)>,
) -> Result<Vec<KeptOutput>, String> {
    let mut found = Vec::with_capacity(declared.len());
    for (name, path) in declared {
        let hashed = match hash_path(&path) {
            Ok(hashed) => hashed,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(format!(
                    "declared output `{name}` was not written: {} does not exist",
                    path.display()
                ));
            }
            Err(e) => {
                return Err(format!(
                    "declared output `{name}` cannot be read at {}: {e}",
                    path.display()
                ));
            }
        };
        let stored = content.keep(&path, &hashed).map_err(|e| {
            format!(
                "cannot keep a copy of output `{name}` in the content store {}: {e}",
                content.url
            )
        })?;
        found.push(KeptOutput {
            name,
            path: path.display().to_string(),
            stored: Some(stored),
            hashed,
        });
    }
    Ok(found)
}

impl KeptOutput {
    /// As an agent reports it with the attempt's outcome.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "path": self.path,
            "stored": self.stored,
            "hash": self.hashed.hash,
            "kind": self.hashed.kind.as_str(),
            "size": self.hashed.size,
        })
    }

    /// Read back from [`KeptOutput::to_json`].
    #[must_use]
    pub fn from_json(value: &serde_json::Value) -> Option<Self> {
        Some(Self {
            name: value["name"].as_str()?.to_owned(),
            path: value["path"].as_str()?.to_owned(),
            stored: value["stored"].as_str().map(str::to_owned),
            hashed: Hashed {
                hash: value["hash"].as_str()?.to_owned(),
                kind: value["kind"].as_str()?.parse().ok()?,
                size: value["size"].as_u64()?,
            },
        })
    }
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

fn remove(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Puts a copy kept in a folder back at `path`, replacing what is there.
fn restore_copy(stored: &Path, path: &Path) -> io::Result<()> {
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
    fn kept_files_and_folders_restore_exactly_and_a_half_kept_folder_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::local(&dir.path().join("store")).unwrap();
        let src = dir.path().join("model");
        fs::create_dir_all(src.join("w")).unwrap();
        fs::write(src.join("w/weights.bin"), "123").unwrap();
        let folder = hash_path(&src).unwrap();
        let kept = store.keep(&src, &folder).unwrap();
        assert_eq!(kept, store.location(&folder.hash));
        assert!(Path::new(&kept).join("w/weights.bin").exists());
        fs::remove_dir_all(&src).unwrap();
        // Recorded elsewhere (the store moved): read from the store by hash.
        store
            .restore(
                Some("/gone/elsewhere"),
                &folder.hash,
                ArtifactKind::Dir,
                &src,
            )
            .unwrap();
        assert_eq!(hash_path(&src).unwrap(), folder);

        let file = dir.path().join("metrics.json");
        fs::write(&file, "{}").unwrap();
        let hashed = hash_path(&file).unwrap();
        store.keep(&file, &hashed).unwrap();
        fs::write(&file, "changed").unwrap();
        store
            .restore(None, &hashed.hash, ArtifactKind::File, &file)
            .unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap(), "{}");
        let fetched = store.fetch(None, &hashed.hash).unwrap();
        assert_eq!(fs::read_to_string(fetched.unwrap()).unwrap(), "{}");

        // A folder whose copy a crash cut short has no marker: it was never kept.
        fs::remove_file(format!("{kept}.tree")).unwrap();
        let missing = store.restore(None, &folder.hash, ArtifactKind::Dir, &src);
        assert_eq!(missing.unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(store.fetch(None, &folder.hash).unwrap(), None);
    }

    /// The same through S3: nothing is read from the folder it was kept from, a model a
    /// rollback needs is fetched into the local cache once, and a cut-short folder is missing.
    #[test]
    fn an_s3_content_store_keeps_restores_and_fetches_by_hash() {
        let server = vane_objects::testing::S3Server::start("127.0.0.1".parse().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore {
            url: server.url("content", "team/artifacts"),
            objects: Arc::new(server.bucket("content", "team/artifacts")),
            cache: dir.path().join("cache"),
        };
        let model = dir.path().join("model");
        fs::create_dir_all(model.join("w")).unwrap();
        fs::write(model.join("w/weights.bin"), "123").unwrap();
        let hashed = hash_path(&model).unwrap();
        let kept = store.keep(&model, &hashed).unwrap();
        assert!(
            kept.starts_with("s3://content/team/artifacts/sha256/"),
            "{kept}"
        );
        fs::remove_dir_all(&model).unwrap();
        store
            .restore(Some(&kept), &hashed.hash, ArtifactKind::Dir, &model)
            .unwrap();
        assert_eq!(hash_path(&model).unwrap(), hashed);
        let fetched = store.fetch(Some(&kept), &hashed.hash).unwrap().unwrap();
        assert!(fetched.starts_with(dir.path().join("cache")));
        assert_eq!(hash_path(&fetched).unwrap(), hashed);
        assert_eq!(store.fetch(None, &"0".repeat(64)).unwrap(), None);
    }
}
