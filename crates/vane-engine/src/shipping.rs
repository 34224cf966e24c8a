//! An agent's task logs, shipped while the task runs to the storage every host reads
//! (`[scheduler] storage`: S3 or a shared folder), so `vane logs --follow` and the UI show
//! them live from anywhere.
//!
//! The task writes to a spool file on the agent's own disk, as a local task writes its log;
//! what it appended is put in the storage as one object per chunk and then recorded in the
//! database under the attempt's token. Readers take the chunks the database lists, in its
//! order: an object without a row (the agent died between the two, or was fenced off) is never
//! part of a log, and the bodies never enter the database.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, warn};
use vane_objects::Objects;
use vane_store::StoreError;

use crate::agent::AgentLink;

/// How often new output is shipped while a task runs: what a follower waits at most.
const SHIP_EVERY: Duration = Duration::from_millis(500);

/// The most one chunk holds; a task writing faster is shipped in several per round.
const CHUNK_MAX: u64 = 4 * 1024 * 1024;

/// How long the rest of a log is retried after the task ended while the storage or the
/// database is unreachable, before the agent reports the outcome without it.
const FINAL_PATIENCE: Duration = Duration::from_secs(60);

/// The key of chunk `seq` of dispatched attempt `id`, below the attempt's log prefix.
#[must_use]
pub fn chunk_key(prefix: &str, id: i64, seq: u64) -> String {
    // Zero-padded, so a listing of the folder is in the log's order too.
    format!("{prefix}/{id:010}-{seq:08}")
}

/// Ships one attempt's log until told the task ended, then ships the rest.
pub(crate) struct Shipper {
    ended: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

/// What a shipper needs to know of its attempt.
pub(crate) struct Shipment<L> {
    pub(crate) link: L,
    pub(crate) objects: Arc<dyn Objects>,
    pub(crate) spool: PathBuf,
    pub(crate) prefix: String,
    pub(crate) id: i64,
    pub(crate) token: i64,
}

impl Shipper {
    pub(crate) fn start<L: AgentLink + 'static>(shipment: Shipment<L>) -> Self {
        let (ended, rx) = watch::channel(false);
        let handle = tokio::spawn(ship(shipment, rx));
        Self { ended, handle }
    }

    /// Ships what is left once the task ended; returns when the whole log is shipped (or it
    /// cannot be, which is logged).
    pub(crate) async fn finish(self) {
        let _ = self.ended.send(true);
        let _ = self.handle.await;
    }
}

/// Bytes of `path` from `offset`, at most [`CHUNK_MAX`]; none when it does not exist yet.
fn read_from(path: &std::path::Path, offset: u64) -> std::io::Result<Vec<u8>> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    file.seek(SeekFrom::Start(offset))?;
    let mut chunk = Vec::new();
    file.take(CHUNK_MAX).read_to_end(&mut chunk)?;
    Ok(chunk)
}

async fn ship<L: AgentLink>(s: Shipment<L>, mut ended: watch::Receiver<bool>) {
    let (mut offset, mut seq) = (0u64, 0u64);
    let mut over_since: Option<Instant> = None;
    // The agent dropped its end of the channel without saying the task ended: ship the rest.
    let mut dropped = false;
    loop {
        // Read before the file: what the task wrote before it ended is then in this round.
        let over = dropped || *ended.borrow_and_update();
        if over && over_since.is_none() {
            over_since = Some(Instant::now());
        }
        if over_since.is_some_and(|t| t.elapsed() > FINAL_PATIENCE) {
            error!(dispatch = s.id, spool = %s.spool.display(), "Gave up shipping the rest of a task's log; it is kept in the spool file.");
            return;
        }
        let spool = s.spool.clone();
        let chunk = match tokio::task::spawn_blocking(move || read_from(&spool, offset)).await {
            Ok(Ok(chunk)) => chunk,
            Ok(Err(e)) => {
                warn!(dispatch = s.id, spool = %s.spool.display(), %e, "Cannot read a task's log to ship it.");
                Vec::new()
            }
            Err(_) => return,
        };
        if !chunk.is_empty() {
            let key = chunk_key(&s.prefix, s.id, seq);
            let bytes = chunk.len() as u64;
            let (objects, put_key) = (Arc::clone(&s.objects), key.clone());
            let put = tokio::task::spawn_blocking(move || objects.put(&put_key, &chunk)).await;
            let shipped = match put {
                Ok(Ok(())) => s.link.log_chunk(s.id, s.token, key, bytes).await,
                Ok(Err(e)) => {
                    warn!(dispatch = s.id, storage = %s.objects.location(), %e, "Cannot put a chunk of a task's log in the storage; trying again.");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(_) => return,
            };
            match shipped {
                Ok(()) => {
                    offset += bytes;
                    seq += 1;
                    // More may be waiting: a fast writer is shipped without pausing.
                    continue;
                }
                Err(e @ StoreError::Fenced { .. }) => {
                    warn!(dispatch = s.id, %e, "The log is no longer this agent's to write.");
                    return;
                }
                Err(e) => {
                    // The same chunk again, under the same key: a retry overwrites its object.
                    warn!(dispatch = s.id, %e, "Cannot record a chunk of a task's log; trying again.");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        if over {
            // Shipped in full: the storage holds it now.
            let _ = std::fs::remove_file(&s.spool);
            return;
        }
        tokio::select! {
            changed = ended.changed() => dropped = changed.is_err(),
            () = tokio::time::sleep(SHIP_EVERY) => {}
        }
    }
}
