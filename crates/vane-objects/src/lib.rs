//! TEMPORARY local-only stand-in (replaced by the real crate from branch `objects`).
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ObjectError(String);

fn err(e: std::io::Error) -> ObjectError {
    ObjectError(e.to_string())
}

pub trait Objects: Send + Sync + std::fmt::Debug {
    fn location(&self) -> String;
    fn put(&self, key: &str, body: &[u8]) -> Result<(), ObjectError>;
    fn put_file(&self, key: &str, path: &Path) -> Result<(), ObjectError>;
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ObjectError>;
    fn get_to_file(&self, key: &str, path: &Path) -> Result<bool, ObjectError>;
    fn exists(&self, key: &str) -> Result<bool, ObjectError>;
    fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectError>;
    fn delete(&self, key: &str) -> Result<(), ObjectError>;
}

#[derive(Debug)]
struct Local(PathBuf);

impl Objects for Local {
    fn location(&self) -> String {
        self.0.display().to_string()
    }
    fn put(&self, key: &str, body: &[u8]) -> Result<(), ObjectError> {
        let p = self.0.join(key);
        std::fs::create_dir_all(p.parent().unwrap()).map_err(err)?;
        let tmp = p.with_extension("tmp-put");
        std::fs::write(&tmp, body).map_err(err)?;
        std::fs::rename(tmp, p).map_err(err)
    }
    fn put_file(&self, key: &str, path: &Path) -> Result<(), ObjectError> {
        self.put(key, &std::fs::read(path).map_err(err)?)
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ObjectError> {
        match std::fs::read(self.0.join(key)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(err(e)),
        }
    }
    fn get_to_file(&self, key: &str, path: &Path) -> Result<bool, ObjectError> {
        match self.get(key)? {
            Some(b) => {
                std::fs::create_dir_all(path.parent().unwrap()).map_err(err)?;
                std::fs::write(path, b).map_err(err)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
    fn exists(&self, key: &str) -> Result<bool, ObjectError> {
        Ok(self.0.join(key).is_file())
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectError> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            if let Ok(rd) = std::fs::read_dir(dir) {
                for e in rd.flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        walk(root, &p, out);
                    } else {
                        out.push(p.strip_prefix(root).unwrap().display().to_string());
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.0, &self.0, &mut out);
        out.retain(|k| k.starts_with(prefix));
        out.sort();
        Ok(out)
    }
    fn delete(&self, key: &str) -> Result<(), ObjectError> {
        let _ = std::fs::remove_file(self.0.join(key));
        Ok(())
    }
}

pub fn open(url: &str) -> Result<Arc<dyn Objects>, ObjectError> {
    let path = url.strip_prefix("file://").unwrap_or(url);
    if !Path::new(path).is_absolute() {
        return Err(ObjectError(format!("unsupported {url}")));
    }
    Ok(Arc::new(Local(PathBuf::from(path))))
}

pub fn put_tree(o: &dyn Objects, prefix: &str, dir: &Path) -> Result<(), ObjectError> {
    fn walk(o: &dyn Objects, prefix: &str, root: &Path, dir: &Path) -> Result<(), ObjectError> {
        for e in std::fs::read_dir(dir).map_err(err)?.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(o, prefix, root, &p)?;
            } else {
                o.put_file(
                    &format!("{prefix}/{}", p.strip_prefix(root).unwrap().display()),
                    &p,
                )?;
            }
        }
        Ok(())
    }
    walk(o, prefix, dir, dir)
}

pub fn get_tree(o: &dyn Objects, prefix: &str, dir: &Path) -> Result<(), ObjectError> {
    let p = format!("{prefix}/");
    for key in o.list(&p)? {
        o.get_to_file(&key, &dir.join(&key[p.len()..]))?;
    }
    std::fs::create_dir_all(dir).map_err(err)
}
