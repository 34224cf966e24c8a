//! What a person does to a recorded backfill from another terminal: pause, cancel, or check
//! that it can resume (resuming drives it here, which the binary does).

use vane_store::{BackfillRecord, BackfillState, Store};

use crate::{App, AppError};

type Result<T, E = AppError> = std::result::Result<T, E>;

fn finished(record: &BackfillRecord) -> bool {
    matches!(record.state, BackfillState::Cancelled | BackfillState::Done)
}

/// Pauses backfill `id`: no new run starts; runs going finish.
///
/// # Errors
/// [`AppError::Conflict`] when it is cancelled or done already.
pub fn pause(store: &dyn Store, id: i64) -> Result<()> {
    let record = store.backfill(id)?;
    if finished(&record) {
        return Err(AppError::Conflict(format!(
            "backfill {id} is {} already",
            record.state
        )));
    }
    Ok(store.set_backfill_state(id, BackfillState::Paused)?)
}

/// The backfill, if it can resume; the caller then drives it.
///
/// # Errors
/// [`AppError::Conflict`] when it is cancelled or done.
pub fn resumable(store: &dyn Store, id: i64) -> Result<BackfillRecord> {
    let record = store.backfill(id)?;
    if finished(&record) {
        return Err(AppError::Conflict(format!(
            "backfill {id} is {}; start a new one with `vane backfill`",
            record.state
        )));
    }
    Ok(record)
}

impl App {
    /// Cancels backfill `id`: its runs not started yet fail with the reason.
    ///
    /// # Errors
    /// [`AppError::Conflict`] when it is cancelled or done already.
    pub fn cancel_backfill(&self, store: &dyn Store, id: i64) -> Result<()> {
        let record = store.backfill(id)?;
        if finished(&record) {
            return Err(AppError::Conflict(format!(
                "backfill {id} is {} already",
                record.state
            )));
        }
        store.set_backfill_state(id, BackfillState::Cancelled)?;
        vane_daemon::fail_unstarted(store, &record).map_err(|e| match e {
            vane_daemon::DaemonError::Store(s) => AppError::Store(s),
            vane_daemon::DaemonError::Engine(e) => e.into(),
            other => AppError::Engine(vane_engine::EngineError::Internal(other.to_string())),
        })
    }
}
