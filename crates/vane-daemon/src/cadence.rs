//! Which schedule ticks are due, and which of them run: the catch-up policy, as a pure function.

use chrono::{DateTime, Utc};
use vane_dag::{Catchup, Dag};

/// Most ticks decided in one pass, so a per-second schedule after a long downtime cannot
/// stall the scheduler; the rest are decided in the following passes.
const MAX_TICKS_PER_PASS: usize = 10_000;

/// What to do with one due tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Run,
    Skip(String),
}

/// Every tick of `dag` in (`after`, `now`] (and within `start_date`/`end_date`), each with the
/// catch-up policy's verdict. `after` is the latest tick already decided, or, for a DAG never
/// scheduled, the moment before `start_date` (when it has one) or when the scheduler first saw
/// it (a new DAG starts with its next tick). A tick that came while this scheduler was up
/// (`up_since`) is on time and runs whatever the policy; earlier ones were missed.
pub fn due_ticks(
    dag: &Dag,
    last_decided: Option<DateTime<Utc>>,
    first_seen: DateTime<Utc>,
    up_since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, Plan)> {
    let Some(schedule) = &dag.schedule else {
        return Vec::new();
    };
    let cadence = &dag.cadence;
    let before_start = cadence
        .start_date
        .map(|s| s - chrono::Duration::nanoseconds(1));
    // A new DAG catches up from its start_date only when it catches up everything; otherwise
    // it starts with its next tick, as documented.
    let after = match (last_decided, before_start) {
        (Some(last), Some(start)) => last.max(start),
        (Some(last), None) => last,
        (None, Some(start)) if cadence.catchup == Catchup::All => start,
        (None, Some(start)) => first_seen.max(start),
        (None, None) => first_seen,
    };
    let until = cadence.end_date.map_or(now, |end| end.min(now));
    let mut ticks: Vec<DateTime<Utc>> = Vec::new();
    let mut at = after;
    while let Some(tick) = schedule.next_after(at) {
        if tick > until || ticks.len() == MAX_TICKS_PER_PASS {
            break;
        }
        ticks.push(tick);
        at = tick;
    }
    let window_start = cadence
        .catchup_window
        .and_then(|w| chrono::Duration::from_std(w).ok())
        .map(|w| now - w);
    let last = ticks.len().saturating_sub(1);
    ticks
        .into_iter()
        .enumerate()
        .map(|(i, tick)| {
            let latest = i == last;
            let plan = if tick >= up_since {
                Plan::Run
            } else if window_start.is_some_and(|w| tick < w) {
                Plan::Skip(format!(
                    "outside the catch-up window ({})",
                    vane_dag::format_duration(cadence.catchup_window.unwrap_or_default())
                ))
            } else {
                match cadence.catchup {
                    Catchup::All => Plan::Run,
                    Catchup::Latest if latest => Plan::Run,
                    Catchup::Latest => Plan::Skip(
                        "missed while the scheduler was down or the DAG paused; catchup = \"latest\" runs only the most recent".into(),
                    ),
                    Catchup::None => Plan::Skip(
                        "missed while the scheduler was down or the DAG paused; catchup = \"none\"".into(),
                    ),
                }
            };
            (tick, plan)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn dag(extra: &str) -> Dag {
        let source =
            format!("[dag]\nschedule = \"0 2 * * *\"\n{extra}\n[tasks.a]\ncommand = \"true\"\n");
        let parsed = vane_dag::parse_dag(&source, "t");
        assert_eq!(parsed.diagnostics, vec![]);
        parsed.dag.unwrap()
    }

    fn day(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
    }

    fn plans(ticks: &[(DateTime<Utc>, Plan)]) -> Vec<(u32, bool)> {
        use chrono::Datelike;
        ticks
            .iter()
            .map(|(t, p)| (t.day(), *p == Plan::Run))
            .collect()
    }

    #[test]
    fn a_new_dag_starts_with_its_next_tick() {
        let d = dag("");
        let up = day(20, 10, 0);
        assert_eq!(due_ticks(&d, None, up, up, day(20, 23, 0)), vec![]);
        assert_eq!(
            plans(&due_ticks(&d, None, up, up, day(21, 2, 0))),
            vec![(21, true)]
        );
    }

    #[test]
    fn after_downtime_latest_runs_only_the_most_recent_tick() {
        let d = dag("");
        let ticks = due_ticks(
            &d,
            Some(day(20, 2, 0)),
            day(1, 0, 0),
            day(23, 9, 0),
            day(23, 9, 0),
        );
        assert_eq!(plans(&ticks), vec![(21, false), (22, false), (23, true)]);
        assert!(matches!(&ticks[0].1, Plan::Skip(r) if r.contains("latest")));
    }

    #[test]
    fn after_downtime_all_runs_every_tick_within_the_window() {
        let d = dag("catchup = \"all\"\ncatchup_window = \"2d\"");
        let now = day(23, 9, 0);
        let ticks = due_ticks(&d, Some(day(18, 2, 0)), day(1, 0, 0), now, now);
        assert_eq!(
            plans(&ticks),
            vec![
                (19, false),
                (20, false),
                (21, false),
                (22, true),
                (23, true)
            ]
        );
        assert_eq!(
            ticks[0].1,
            Plan::Skip("outside the catch-up window (2d)".into())
        );
    }

    #[test]
    fn none_runs_only_ticks_that_came_while_the_scheduler_was_up() {
        let d = dag("catchup = \"none\"");
        // Down from the 21st until a moment after the 23rd's tick: both missed ticks are
        // skipped, however recent.
        let restarted = day(23, 2, 0) + chrono::Duration::seconds(1);
        let late = due_ticks(&d, Some(day(21, 2, 0)), day(1, 0, 0), restarted, restarted);
        assert_eq!(plans(&late), vec![(22, false), (23, false)]);
        // Up since before the tick, even a pass that comes late runs it.
        let on_time = due_ticks(
            &d,
            Some(day(22, 2, 0)),
            day(1, 0, 0),
            day(22, 12, 0),
            day(23, 2, 5),
        );
        assert_eq!(plans(&on_time), vec![(23, true)]);
    }

    #[test]
    fn start_and_end_dates_bound_the_ticks() {
        let d = dag(
            "catchup = \"all\"\nstart_date = \"2026-11-20\"\nend_date = \"2026-11-22T12:00:00Z\"",
        );
        let ticks = due_ticks(&d, None, day(23, 0, 0), day(23, 9, 0), day(23, 9, 0));
        assert_eq!(plans(&ticks), vec![(20, true), (21, true), (22, true)]);
    }

    #[test]
    fn a_start_date_in_the_past_does_not_catch_up_unless_all() {
        let d = dag("start_date = \"2026-11-01\"");
        let seen = day(23, 9, 0);
        assert_eq!(due_ticks(&d, None, seen, seen, seen), vec![]);
        let tomorrow = due_ticks(&d, None, seen, seen, day(24, 3, 0));
        assert_eq!(plans(&tomorrow), vec![(24, true)]);
    }

    #[test]
    fn a_manual_only_dag_has_no_ticks() {
        let parsed = vane_dag::parse_dag("[tasks.a]\ncommand = \"true\"\n", "t");
        let d = parsed.dag.unwrap();
        assert_eq!(
            due_ticks(&d, None, day(1, 0, 0), day(1, 0, 0), day(23, 0, 0)),
            vec![]
        );
    }
}
