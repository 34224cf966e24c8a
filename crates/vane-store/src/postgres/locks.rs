//! Transaction-scoped advisory locks, for the writes where SQLite's single writer made a read
//! and the write it decides one step: the next version number of an artifact, the holder of a
//! model's rollout, whether an alert is open. PostgreSQL takes them with
//! `pg_advisory_xact_lock`, waits while another transaction holds the same one, and releases
//! them at its commit or rollback, so a waiter reads what the holder committed.
//!
//! Keys use the two-`int4` form, (scope, hash of a name); the migration lock uses the one-`int8`
//! form, a key space that never overlaps this one. Two names with the same hash only wait for
//! each other needlessly.

use postgres::Client;

use crate::Result;

/// What a lock guards. The values only have to differ from each other.
#[derive(Debug, Clone, Copy)]
#[repr(i32)]
pub(super) enum Scope {
    /// The versions of one artifact name, and the stages of the model of that name.
    Artifact = 0x766e_0001,
    /// The rollout lock row of one model.
    Rollout = 0x766e_0002,
    /// Every alert and what evaluation has claimed: alert writes are few and short, and one
    /// lock for all of them keeps two evaluators from deadlocking on each other's alerts.
    Alerts = 0x766e_0003,
}

/// Waits for, then holds until the transaction ends, the lock of `name` in `scope`.
///
/// # Errors
/// Fails when the database cannot be reached, or PostgreSQL broke a deadlock by failing this
/// transaction (the outermost transaction then starts over).
pub(super) fn lock(c: &mut Client, scope: Scope, name: &str) -> Result<()> {
    c.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&(scope as i32), &name],
    )?;
    Ok(())
}

/// [`lock`] for each of `names`, in one round trip. The keys are taken in ascending order, the
/// same in every transaction, so two transactions locking overlapping sets wait for each other
/// but never in a cycle, even when two names share a key.
///
/// # Errors
/// As [`lock`].
pub(super) fn lock_all(c: &mut Client, scope: Scope, names: &[&str]) -> Result<()> {
    c.execute(
        "SELECT pg_advisory_xact_lock($1, key)
         FROM (SELECT DISTINCT hashtext(name) AS key FROM unnest($2::text[]) AS name
               ORDER BY key) AS keys",
        &[&(scope as i32), &names],
    )?;
    Ok(())
}
