//! Task logs and the storage they and the content store live in.
//!
//! A task run on the scheduler's host writes its log file in the state folder. A task run by
//! an agent writes on the agent's host, which ships the log in chunks to the storage
//! (`[scheduler] storage`: S3 or a folder every host reaches); the database lists the chunks
//! in order. A reader takes both, so `vane logs`, the API and the UI read any task's log the
//! same way, from any host, while it runs.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use vane_objects::Objects;
use vane_store::{AttemptRecord, LogChunkOf, RunId};

use crate::{App, AppError};

/// How much of a log file one [`LogReader::read_new`] returns.
pub const LOG_PIECE: u64 = 64 * 1024;

/// Where task logs shipped by agents and the content store are kept.
#[derive(Clone)]
pub struct Storage {
    /// As agents open it.
    pub logs_url: String,
    pub logs: Arc<dyn Objects>,
    pub content_url: String,
    pub content: Arc<dyn Objects>,
    /// Where copies fetched from a remote content store are kept on this host.
    pub cache: PathBuf,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("logs", &self.logs_url)
            .field("content", &self.content_url)
            .finish()
    }
}

impl Storage {
    /// The content store in this storage, with copies fetched from it kept in the state
    /// folder.
    #[must_use]
    pub fn content_store(&self) -> vane_engine::artifacts::ContentStore {
        vane_engine::artifacts::ContentStore {
            url: self.content_url.clone(),
            objects: Arc::clone(&self.content),
            cache: self.cache.clone(),
        }
    }
}

/// `url` with `folder` below it: `s3://b/p?endpoint=…` + `logs` is `s3://b/p/logs?endpoint=…`.
fn below(url: &str, folder: &str) -> String {
    let (path, query) = url
        .split_once('?')
        .map_or((url, None), |(p, q)| (p, Some(q)));
    let joined = format!("{}/{folder}", path.trim_end_matches('/'));
    match query {
        Some(q) => format!("{joined}?{q}"),
        None => joined,
    }
}

impl App {
    /// The storage: `[scheduler] storage` when set (logs under `logs/`, the content store
    /// under `artifacts/`), otherwise the state folder itself, where both have always been.
    ///
    /// # Errors
    /// The config does not validate or the storage cannot be opened.
    pub fn storage(&self) -> Result<Storage, AppError> {
        let root = match self.config()?.storage {
            Some(url) => url,
            None => std::path::absolute(self.state_dir())
                .map_err(AppError::io("cannot find the state folder"))?
                .display()
                .to_string(),
        };
        let open = |folder: &str| {
            let url = below(&root, folder);
            let objects = vane_objects::open(&url).map_err(|e| {
                AppError::Storage(format!(
                    "cannot open the storage {url}: {e}; check `[scheduler] storage` in {}",
                    self.paths.config.display()
                ))
            })?;
            Ok::<_, AppError>((url, objects))
        };
        let (logs_url, logs) = open("logs")?;
        let (content_url, content) = open("artifacts")?;
        Ok(Storage {
            logs_url,
            logs,
            content_url,
            content,
            cache: std::path::absolute(self.state_dir().join("artifacts-cache"))
                .map_err(AppError::io("cannot find the state folder"))?,
        })
    }
}

/// An attempt's log as it grows: each call to [`LogReader::read_new`] returns what was written
/// since the last.
pub struct LogReader {
    store: crate::BoxStore,
    objects: Option<Arc<dyn Objects>>,
    run: RunId,
    task: String,
    attempt: u32,
    file: PathBuf,
    /// The last chunk read, by id; and how far into the log file.
    last_chunk: i64,
    file_offset: u64,
}

impl LogReader {
    /// Reads attempt `attempt` of task `task` of run `run`; `objects` is the log storage, when it can be
    /// opened (without it, chunks shipped by agents cannot be read and say so).
    #[must_use]
    pub fn new(
        store: crate::BoxStore,
        objects: Option<Arc<dyn Objects>>,
        run: RunId,
        task: &str,
        attempt: &AttemptRecord,
    ) -> Self {
        Self {
            store,
            objects,
            run,
            task: task.to_owned(),
            attempt: attempt.attempt,
            file: PathBuf::from(&attempt.log_path),
            last_chunk: 0,
            file_offset: 0,
        }
    }

    /// Everything written since the last call, into `out` a piece at a time; how many
    /// bytes.
    ///
    /// # Errors
    /// As [`read_new`](Self::read_new), and `out` cannot be written.
    pub fn copy_to(&mut self, out: &mut dyn std::io::Write) -> Result<u64, AppError> {
        let mut copied = 0;
        loop {
            let piece = self.read_new()?;
            if piece.is_empty() {
                return Ok(copied);
            }
            out.write_all(&piece)
                .map_err(AppError::io("writing the log"))?;
            copied += piece.len() as u64;
        }
    }

    /// What was written since the last call: chunks an agent shipped, then at most
    /// [`LOG_PIECE`] bytes of the log file; empty once nothing new is there. Callers read
    /// until it is empty, so none holds a whole log in memory.
    ///
    /// # Errors
    /// The database, the storage or the file cannot be read.
    pub fn read_new(&mut self) -> Result<Vec<u8>, AppError> {
        let of = LogChunkOf {
            run: self.run,
            task: &self.task,
            attempt: self.attempt,
        };
        let mut out = Vec::new();
        let chunks = self.store.log_chunks(&of, self.last_chunk)?;
        if let Some(first) = chunks.first() {
            let Some(objects) = &self.objects else {
                return Err(AppError::Storage(format!(
                    "the log is in the log storage, which cannot be opened here (chunk {})",
                    first.key
                )));
            };
            for chunk in chunks {
                match objects.get(&chunk.key) {
                    Ok(Some(body)) => out.extend_from_slice(&body),
                    Ok(None) => {
                        return Err(AppError::Storage(format!(
                            "chunk {} of the log is missing from the storage {}",
                            chunk.key,
                            objects.location()
                        )));
                    }
                    Err(e) => {
                        return Err(AppError::Storage(format!(
                            "cannot read chunk {} of the log from {}: {e}",
                            chunk.key,
                            objects.location()
                        )));
                    }
                }
                self.last_chunk = chunk.id;
            }
        }
        match std::fs::File::open(&self.file) {
            Ok(mut file) => {
                file.seek(SeekFrom::Start(self.file_offset))
                    // A piece at a time: the server sends each before it reads the next.
                    .and_then(|_| file.take(LOG_PIECE).read_to_end(&mut out))
                    .map(|n| self.file_offset += n as u64)
                    .map_err(AppError::io(format!(
                        "cannot read the log {}",
                        self.file.display()
                    )))?;
            }
            // An agent's task has no file here; a local one's appears when it starts.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(AppError::Io {
                    context: format!("cannot read the log {}", self.file.display()),
                    source: e,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::below;

    #[test]
    fn storage_folders_go_below_the_url_before_its_settings() {
        assert_eq!(
            below("s3://bucket/vane?endpoint=http://minio:9000", "logs"),
            "s3://bucket/vane/logs?endpoint=http://minio:9000"
        );
        assert_eq!(below("s3://bucket", "artifacts"), "s3://bucket/artifacts");
        assert_eq!(below("/srv/vane/", "logs"), "/srv/vane/logs");
    }
}
