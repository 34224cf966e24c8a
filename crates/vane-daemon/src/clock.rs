//! The time the scheduler loop reads: wall-clock time for ticks and records, and monotonic
//! time for its intervals (poll, recovery, heartbeat).

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// Where the daemon reads the time.
///
/// The loop's intervals always use tokio's [`Instant`], which follows the real monotonic
/// clock in production and a paused clock in tests (`#[tokio::test(start_paused = true)]`).
/// Wall-clock time is the system's in production; a clock [`Clock::starting_at`] derives it
/// from tokio's time instead, so `tokio::time::advance` moves ticks and intervals together
/// and an hour of schedule takes no real time to test.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    /// The wall-clock time at a tokio instant; `None` reads the system clock.
    anchor: Option<(DateTime<Utc>, Instant)>,
}

impl Clock {
    /// The system's clock. Wall time is read afresh every time rather than derived from the
    /// monotonic clock: after a suspend or an NTP step, ticks follow the time people see.
    #[must_use]
    pub fn system() -> Self {
        Self { anchor: None }
    }

    /// A clock that reads `wall` now and moves with tokio's (possibly paused) time from here.
    #[must_use]
    pub fn starting_at(wall: DateTime<Utc>) -> Self {
        Self {
            anchor: Some((wall, Instant::now())),
        }
    }

    /// The wall-clock time.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        match self.anchor {
            None => Utc::now(),
            // Saturating: a clock advanced past the year 262143 stays there rather than panic.
            Some((wall, at)) => chrono::Duration::from_std(at.elapsed())
                .ok()
                .and_then(|d| wall.checked_add_signed(d))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }

    /// The monotonic time the loop measures its intervals with.
    #[must_use]
    pub fn instant(&self) -> Instant {
        Instant::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_clock_starting_at_a_time_moves_with_tokio_time() {
        let start = Utc.with_ymd_and_hms(2026, 3, 29, 0, 0, 0).unwrap();
        let clock = Clock::starting_at(start);
        let began = clock.instant();
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(clock.now(), start + chrono::Duration::seconds(90));
        assert_eq!(clock.instant() - began, Duration::from_secs(90));
    }
}
