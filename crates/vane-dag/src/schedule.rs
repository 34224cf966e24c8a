//! Ticks of a cron schedule: the fixed grid runs are placed on.
//!
//! Ticks are computed from the cron expression in the DAG's time zone, never as "last run +
//! interval", so a slow run or a restart cannot make the cadence drift. Daylight-saving days are
//! handled by `croner`: a time that does not exist on the spring-forward day runs at the first
//! valid time after the gap, and a time that exists twice on the fall-back day runs once.
//!
//! A scheduled run's *logical date* is its tick; its *data interval* is [previous tick, tick).

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};

use crate::model::Schedule;

/// The instant wall-clock time `local` names in `tz`, or the first valid time after it when
/// a daylight-saving gap skips it (the earlier of two, when the clock falls back).
pub fn resolve_local(local: NaiveDateTime, tz: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    (0..=24 * 4)
        .map(|quarter| local + chrono::Duration::minutes(15 * quarter))
        .find_map(|l| tz.from_local_datetime(&l).earliest())
        .map(|t| t.with_timezone(&Utc))
}

/// Reads a date as people give it on the command line: `YYYY-MM-DD` is the start of that day
/// in `tz` (or, with `end_of_day`, its last microsecond, so a range's last day is included),
/// anything else must be RFC 3339.
///
/// # Errors
/// Says what was expected.
pub fn parse_when(
    text: &str,
    tz: chrono_tz::Tz,
    end_of_day: bool,
) -> Result<DateTime<Utc>, String> {
    let when = parse_any_when(text, tz, end_of_day)?;
    // Every date vane takes in is written to the database and read back by every later
    // query: one it cannot read back (year -1, or five digits) would stop far more than
    // its own run, so it is refused here, at the door. The bound is on the year as written
    // (which the API's document can state as a pattern), and on the instant it names.
    let written = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| d.year())
        .or_else(|_| DateTime::parse_from_rfc3339(text).map(|t| t.year()))
        .unwrap_or_else(|_| when.year());
    let latest = NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|d| d.and_hms_opt(23, 59, 59))
        .map(|t| t.and_utc());
    if !(1970..=9999).contains(&written) || latest.is_some_and(|l| when > l) {
        return Err(format!(
            "`{text}` is outside the dates vane keeps: from 1970-01-01 to 9999-12-31"
        ));
    }
    Ok(when)
}

fn parse_any_when(
    text: &str,
    tz: chrono_tz::Tz,
    end_of_day: bool,
) -> Result<DateTime<Utc>, String> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = if end_of_day {
            date.succ_opt()
        } else {
            Some(date)
        };
        let start = day
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .and_then(|midnight| resolve_local(midnight, tz))
            .ok_or_else(|| format!("{text} has no valid time in {tz}"))?;
        return Ok(if end_of_day {
            start - chrono::Duration::microseconds(1)
        } else {
            start
        });
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("`{text}` is neither YYYY-MM-DD nor RFC 3339 (2026-11-23T02:00:00Z)"))
}

/// 28 years holding each of the 14 kinds of year (the weekday of 1 January, leap or not)
/// there are. Which days a cron expression names depends only on the kind of year, so one
/// with no day in these has none in any year.
const CALENDAR_CYCLE: (i32, i32) = (2000, 2027);

/// Why cron `expression` (already parsed as `cron`) never fires and what to do, or `None` when
/// it does.
///
/// croner itself, asked for the next time of `0 0 30 2 *`, walks day by day to the year 5000
/// before giving up (a tenth of a second, at every tick asked for, for every such DAG); here
/// the walk is bounded to one calendar cycle by a year field, which croner skips year by year.
pub(crate) fn never_fires(expression: &str, cron: &croner::Cron) -> Option<(String, &'static str)> {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    // Seconds first when there are six or seven fields; a seventh is the year.
    let (seconds, days, years) = match fields.len() {
        5 => ("0", &fields[..], None),
        6 => (fields[0], &fields[1..], None),
        7 => (fields[0], &fields[1..6], Some(fields[6])),
        // A preset (`@daily`) fires.
        _ => return None,
    };
    let (first, last) = CALENDAR_CYCLE;
    let bounded = format!("{seconds} {} {first}-{last}", days.join(" "));
    let start = Utc.with_ymd_and_hms(first, 1, 1, 0, 0, 0).single()?;
    let in_cycle = bounded
        .parse::<croner::Cron>()
        .ok()?
        .find_next_occurrence(&start, true)
        .is_ok();
    if !in_cycle {
        let why = impossible_date(days[2], days[3]).unwrap_or_else(|| {
            "no date matches its day of the month, month and day of the week".into()
        });
        return Some((
            format!("this schedule never fires: {why}"),
            "fix the day of the month or the month (\"0 0 L 2 *\" is the last day of February), or remove `schedule` to run the DAG only when triggered",
        ));
    }
    // Only a year field can end a schedule whose days exist; croner skips the years it
    // does not name, so this search is short too.
    if years.is_some() && cron.find_next_occurrence(&Utc::now(), false).is_err() {
        return Some((
            format!(
                "this schedule never fires again: its years ({}) are past",
                years.unwrap_or_default()
            ),
            "widen the year field (the seventh) or drop it, or remove `schedule` to run the DAG only when triggered",
        ));
    }
    None
}

/// `February has no 30th`, when a day of the month and a month, each one number (or a month's
/// name), never meet.
fn impossible_date(day: &str, month: &str) -> Option<String> {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let day: u32 = day.parse().ok()?;
    let month = month.parse::<usize>().ok().or_else(|| {
        MONTHS
            .iter()
            .position(|m| m[..3].eq_ignore_ascii_case(month))
            .map(|i| i + 1)
    })?;
    let name = MONTHS.get(month.checked_sub(1)?)?;
    // The longest each month gets, February in a leap year.
    let longest = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
    let suffix = match day {
        31 => "st",
        _ => "th",
    };
    (day > longest).then(|| format!("{name} has no {day}{suffix}"))
}

impl Schedule {
    /// The first tick strictly after `after`, or `None` when the expression has no more.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.timezone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The last tick strictly before `before`.
    pub fn previous_before(&self, before: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = before.with_timezone(&self.timezone);
        self.cron
            .find_previous_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// Every tick in `[from, to]`, both inclusive, oldest first.
    pub fn ticks_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        let first = from - chrono::Duration::nanoseconds(1);
        std::iter::successors(self.next_after(first), move |t| self.next_after(*t))
            .take_while(move |t| *t <= to)
    }

    /// The data interval of the run whose logical date is `tick`: [previous tick, tick).
    pub fn data_interval(&self, tick: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        (self.previous_before(tick).unwrap_or(tick), tick)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    fn schedule(expression: &str, tz: &str) -> crate::Schedule {
        let source = format!(
            "[dag]\nschedule = \"{expression}\"\ntimezone = \"{tz}\"\n[tasks.a]\ncommand = \"true\"\n"
        );
        crate::parse_dag(&source, "t")
            .dag
            .unwrap()
            .schedule
            .unwrap()
    }

    /// Local wall-clock times of the ticks from `from` (a local date) for `days` days.
    fn local_ticks(expression: &str, tz: &str, from: (i32, u32, u32), days: i64) -> Vec<String> {
        let s = schedule(expression, tz);
        let start = s
            .timezone
            .with_ymd_and_hms(from.0, from.1, from.2, 0, 0, 0)
            .unwrap()
            .with_timezone(&chrono::Utc);
        s.ticks_between(start, start + chrono::Duration::days(days))
            .map(|t| t.with_timezone(&s.timezone).to_rfc3339())
            .collect()
    }

    #[test]
    fn spring_forward_runs_once_at_the_first_valid_time() {
        assert_eq!(
            local_ticks("30 2 * * *", "America/New_York", (2026, 3, 7), 3),
            vec![
                "2026-03-07T02:30:00-05:00",
                "2026-03-08T03:00:00-04:00",
                "2026-03-09T02:30:00-04:00",
            ]
        );
        // Southern hemisphere: Sydney springs forward in October.
        assert_eq!(
            local_ticks("30 2 * * *", "Australia/Sydney", (2026, 10, 3), 3),
            vec![
                "2026-10-03T02:30:00+10:00",
                "2026-10-04T03:00:00+11:00",
                "2026-10-05T02:30:00+11:00",
            ]
        );
        assert_eq!(
            local_ticks("30 1 * * *", "Europe/London", (2026, 3, 28), 3),
            vec![
                "2026-03-28T01:30:00+00:00",
                "2026-03-29T02:00:00+01:00",
                "2026-03-30T01:30:00+01:00",
            ]
        );
    }

    #[test]
    fn fall_back_runs_once() {
        assert_eq!(
            local_ticks("30 1 * * *", "America/New_York", (2026, 10, 31), 3),
            vec![
                "2026-10-31T01:30:00-04:00",
                "2026-11-01T01:30:00-04:00",
                "2026-11-02T01:30:00-05:00",
            ]
        );
        assert_eq!(
            local_ticks("30 2 * * *", "Australia/Sydney", (2026, 4, 4), 3),
            vec![
                "2026-04-04T02:30:00+11:00",
                "2026-04-05T02:30:00+11:00",
                "2026-04-06T02:30:00+10:00",
            ]
        );
        assert_eq!(
            local_ticks("30 1 * * *", "Europe/London", (2026, 10, 24), 3),
            vec![
                "2026-10-24T01:30:00+01:00",
                "2026-10-25T01:30:00+01:00",
                "2026-10-26T01:30:00+00:00",
            ]
        );
    }

    #[test]
    fn standard_cron_syntax_and_presets() {
        let weekdays = local_ticks("0 9 * * MON-FRI", "UTC", (2026, 11, 20), 4);
        assert_eq!(
            weekdays,
            vec!["2026-11-20T09:00:00+00:00", "2026-11-23T09:00:00+00:00"]
        );
        let hourly = local_ticks("@hourly", "UTC", (2026, 11, 23), 0);
        assert_eq!(hourly, vec!["2026-11-23T00:00:00+00:00"]);
        let seconds = schedule("*/30 * * * * *", "UTC");
        let t = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            seconds.next_after(t),
            Some(t + chrono::Duration::seconds(30))
        );
    }

    #[test]
    fn the_data_interval_ends_at_the_tick() {
        let s = schedule("0 2 * * *", "UTC");
        let tick = chrono::Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap();
        assert_eq!(
            s.data_interval(tick),
            (tick - chrono::Duration::days(1), tick)
        );
    }
}
