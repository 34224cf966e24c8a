//! The folder backend: a key is a file below the folder.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::{ObjectError, Objects, check_key};

/// Objects as files below a folder (created on first write).
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, key: &str) -> Result<PathBuf, ObjectError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    /// A file beside `target` to write first and rename into place: a reader never sees a
    /// half-written object, and two writers never share one.
    fn partial(target: &Path) -> PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        target.with_file_name(format!(
            ".{name}.{}-{}.partial",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ))
    }

    fn write_with(
        &self,
        key: &str,
        write: impl FnOnce(&Path) -> io::Result<()>,
    ) -> Result<(), ObjectError> {
        let target = self.path(key)?;
        place(&target, write)
            .map_err(|e| ObjectError::io(format!("cannot write {}", target.display()), &e))
    }
}

/// Writes `target` through a partial file beside it, renamed into place.
fn place(target: &Path, write: impl FnOnce(&Path) -> io::Result<()>) -> io::Result<()> {
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)?;
    }
    let partial = LocalDir::partial(target);
    let written = write(&partial).and_then(|()| fs::rename(&partial, target));
    if written.is_err() {
        let _ = fs::remove_file(&partial);
    }
    written
}

impl Objects for LocalDir {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn put(&self, key: &str, body: &[u8]) -> Result<(), ObjectError> {
        self.write_with(key, |p| fs::write(p, body))
    }

    fn put_file(&self, key: &str, path: &Path) -> Result<(), ObjectError> {
        self.write_with(key, |p| fs::copy(path, p).map(drop))
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ObjectError> {
        let path = self.path(key)?;
        match fs::read(&path) {
            Ok(body) => Ok(Some(body)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ObjectError::io(
                format!("cannot read {}", path.display()),
                &e,
            )),
        }
    }

    fn get_to_file(&self, key: &str, path: &Path) -> Result<bool, ObjectError> {
        let source = self.path(key)?;
        if !source.is_file() {
            return Ok(false);
        }
        place(path, |p| fs::copy(&source, p).map(drop)).map_err(|e| {
            ObjectError::io(
                format!("cannot copy {} to {}", source.display(), path.display()),
                &e,
            )
        })?;
        Ok(true)
    }

    fn exists(&self, key: &str) -> Result<bool, ObjectError> {
        Ok(self.path(key)?.is_file())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectError> {
        // Only the folder the prefix points into is walked, not the whole store.
        let (folder, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let start = if folder.is_empty() {
            self.root.clone()
        } else {
            check_key(folder)?;
            self.root.join(folder)
        };
        let mut out = Vec::new();
        walk(&start, folder, &mut out)
            .map_err(|e| ObjectError::io(format!("cannot list {}", start.display()), &e))?;
        out.retain(|k| k.starts_with(prefix));
        out.sort();
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<(), ObjectError> {
        let path = self.path(key)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ObjectError::io(
                format!("cannot remove {}", path.display()),
                &e,
            )),
        }
    }
}

/// The keys of the files below `dir`, whose key is `at`; partial files left by a crash are
/// not objects.
fn walk(dir: &Path, at: &str, out: &mut Vec<String>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let key = if at.is_empty() {
            name.clone()
        } else {
            format!("{at}/{name}")
        };
        if entry.file_type()?.is_dir() {
            walk(&entry.path(), &key, out)?;
        } else if !(name.starts_with('.') && name.ends_with(".partial")) {
            out.push(key);
        }
    }
    Ok(())
}
