//! Passes that keep failing (a full disk, a read-only or unreachable database, a DAG folder
//! gone): said once, not once per pass, and tried again less and less often.
//!
//! A pass whose tick cannot be recorded finds that tick still due at once, so without this a
//! failing database made the loop spin, logging hundreds of errors a second at a good part of a
//! core, and the message that mattered scrolled away.

use std::collections::HashSet;
use std::fmt::Display;
use std::time::Duration;

use tracing::{debug, error, info};
use vane_store::StoreError;

/// First wait after a failed pass; it doubles with each failed pass after it.
const FIRST_WAIT: Duration = Duration::from_millis(100);

/// Longest wait between passes while they fail: how late the scheduler may notice that the
/// disk has room again.
pub(crate) const LONGEST_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub(crate) struct Trouble {
    /// Each problem said since the passes began to fail, as "step: error".
    said: HashSet<String>,
    /// Failures in the pass under way.
    this_pass: u32,
    /// Failed passes in a row.
    failed_passes: u32,
    wait: Duration,
}

impl Trouble {
    /// Notes that `step` failed with `error`; says so unless it was said since the trouble began.
    pub(crate) fn failed(&mut self, step: &str, error: &dyn Display, store: Option<&StoreError>) {
        self.this_pass += 1;
        let text = format!("{step}: {error}");
        if self.said.len() < 100 && self.said.insert(text) {
            let fix = match store {
                Some(StoreError::Unwritable(_)) => {
                    "free disk space where the database lives, or make it writable again"
                }
                Some(_) => "check that the database is up and reachable",
                None => "see the error",
            };
            error!(
                step,
                %error,
                fix,
                "A scheduler pass failed; runs in flight go on, and passes are tried again, less often \
                 while this lasts (at most every 30 s). Said once; vane says when it is over."
            );
        } else {
            debug!(step, %error, "A scheduler pass failed again.");
        }
    }

    /// Ends a pass: how long to wait before the next one, if the pass failed.
    pub(crate) fn pass_over(&mut self) -> Option<Duration> {
        let failures = std::mem::take(&mut self.this_pass);
        if failures == 0 {
            if self.failed_passes > 0 {
                info!(
                    failed_passes = self.failed_passes,
                    "Scheduler passes succeed again."
                );
            }
            *self = Self::default();
            return None;
        }
        self.failed_passes += 1;
        self.wait = if self.wait.is_zero() {
            FIRST_WAIT
        } else {
            (self.wait * 2).min(LONGEST_WAIT)
        };
        Some(self.wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_passes_wait_longer_each_time_up_to_a_bound_and_a_good_pass_resets() {
        let mut trouble = Trouble::default();
        let mut waits = Vec::new();
        for _ in 0..12 {
            trouble.failed("deciding ticks", &"disk full", None);
            waits.push(trouble.pass_over().expect("a failed pass waits"));
        }
        assert_eq!(waits[0], FIRST_WAIT);
        assert_eq!(waits[1], FIRST_WAIT * 2);
        assert_eq!(*waits.last().unwrap(), LONGEST_WAIT);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(trouble.said.len(), 1, "the same problem is said once");
        assert_eq!(trouble.pass_over(), None);
        trouble.failed("deciding ticks", &"disk full", None);
        assert_eq!(
            trouble.pass_over(),
            Some(FIRST_WAIT),
            "a new stretch starts short"
        );
    }
}
