//! `{{ variable }}` templates in commands, environment values and working directories.
//!
//! Values substituted into a command are shell-quoted, so a parameter can never become shell
//! syntax. `{{ params.x | raw }}` opts out, and `vane validate` warns about every such use.

use std::fmt::Write as _;

/// Variables every task may use, besides `params.NAME`.
pub const BUILTIN_VARIABLES: &[(&str, &str)] = &[
    ("ds", "logical date as YYYY-MM-DD, in the DAG's time zone"),
    ("ds_nodash", "logical date as YYYYMMDD"),
    (
        "ts",
        "logical date and time, ISO 8601 with offset, in the DAG's time zone (Airflow's `ts`)",
    ),
    ("ts_nodash", "logical date and time as YYYYMMDDTHHMMSS"),
    (
        "prev_ds",
        "date of the previous schedule tick (the data interval's start), YYYY-MM-DD; `ds` for a DAG without a schedule",
    ),
    ("prev_ds_nodash", "`prev_ds` as YYYYMMDD"),
    (
        "next_ds",
        "date of the next schedule tick after the logical date, YYYY-MM-DD; `ds` for a DAG without a schedule",
    ),
    ("next_ds_nodash", "`next_ds` as YYYYMMDD"),
    (
        "logical_date",
        "logical date and time, RFC 3339 with offset",
    ),
    (
        "data_interval_start",
        "start of the data interval (the previous schedule tick), RFC 3339",
    ),
    (
        "data_interval_end",
        "end of the data interval (the logical date), RFC 3339",
    ),
    ("run_id", "id of the DAG run"),
    ("dag_id", "id of the DAG"),
    ("task_id", "id of the task"),
    ("attempt", "attempt number of this task in this run, from 1"),
    (
        "trigger",
        "how this attempt came to run: scheduled, manual, backfill, or clear (the task was cleared)",
    ),
    (
        "work",
        "absolute path of the work folder, where runs put what they produce",
    ),
];

/// A variable a template refers to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Var {
    /// One of [`BUILTIN_VARIABLES`], by name.
    Builtin(&'static str),
    /// `params.NAME`.
    Param(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `days`: moved by `| add_days(N)` (a date variable only).
    Var {
        var: Var,
        raw: bool,
        days: i64,
    },
}

/// The variables that hold a date, which `| add_days(N)` moves: `YYYY-MM-DD` or `YYYYMMDD`.
const DATES: &[&str] = &[
    "ds",
    "ds_nodash",
    "prev_ds",
    "prev_ds_nodash",
    "next_ds",
    "next_ds_nodash",
];

/// `value` (`YYYY-MM-DD` or `YYYYMMDD`) moved by `days`, in the same format; as it is when it
/// is not a date.
fn add_days(value: &str, days: i64) -> String {
    for format in ["%Y-%m-%d", "%Y%m%d"] {
        if let Ok(date) = chrono::NaiveDate::parse_from_str(value, format) {
            // The load bounds `days`; checked anyway, as a date near chrono's end could
            // still overflow, and a render must not panic.
            return chrono::TimeDelta::try_days(days)
                .and_then(|d| date.checked_add_signed(d))
                .map_or_else(|| value.to_owned(), |d| d.format(format).to_string());
        }
    }
    value.to_owned()
}

/// The most days `add_days` moves a date, either way: about 270 years, more than any data
/// interval needs, and far from where dates overflow.
const MOST_DAYS: i64 = 100_000;

/// The filters after a variable: `raw`, `add_days(N)`; `(raw, days)`, or the problem.
fn filters(list: &[&str], name: &str) -> Result<(bool, i64), (String, String)> {
    let (mut raw, mut days) = (false, 0_i64);
    for filter in list.iter().map(|f| f.trim()) {
        if filter == "raw" {
            raw = true;
        } else if let Some(arg) = filter
            .strip_prefix("add_days(")
            .and_then(|a| a.strip_suffix(')'))
        {
            if !DATES.contains(&name) {
                return Err((
                    format!("`add_days` moves a date, and `{name}` is not one"),
                    format!(
                        "use it on {}, as in `{{{{ ds | add_days(-7) }}}}`",
                        DATES.join(", ")
                    ),
                ));
            }
            let n = arg.trim().parse::<i64>().map_err(|_| {
                (
                    format!("`add_days({arg})` needs a whole number of days"),
                    "write e.g. `add_days(-7)` for a week before".to_owned(),
                )
            })?;
            days = days
                .checked_add(n)
                .filter(|d| d.abs() <= MOST_DAYS)
                .ok_or_else(|| {
                    (
                        format!("`add_days({arg})` moves the date too far"),
                        format!("move it at most {MOST_DAYS} days either way"),
                    )
                })?;
        } else {
            let hint = match crate::diag::did_you_mean(
                filter.split('(').next().unwrap_or(filter),
                ["raw", "add_days"],
            ) {
                Some(close) => format!("did you mean `{close}`? The filters are `raw` and `add_days(N)`"),
                None => "the filters are `raw` (as in `{{ params.x | raw }}`) and `add_days(N)` (as in `{{ ds | add_days(-7) }}`)".to_owned(),
            };
            return Err((format!("unknown template filter `{filter}`"), hint));
        }
    }
    Ok((raw, days))
}

/// Airflow's `macros.ds_add(ds, -7)`, pasted from a DAG: what vane writes instead.
fn airflow_macro(inner: &str) -> Option<(String, String)> {
    let call = inner.strip_prefix("macros.")?;
    let (name, args) = call.split_once('(').unwrap_or((call, ""));
    let hint = match name.trim() {
        "ds_add" => {
            let args = args.trim_end_matches(')');
            let (var, days) = args.split_once(',').unwrap_or((args, "N"));
            format!(
                "write `{{{{ {} | add_days({}) }}}}`",
                var.trim(),
                days.trim()
            )
        }
        "ds_format" => {
            "vane has no `ds_format`; use `ds_nodash`, `ts_nodash` or `$VANE_DS` in the command"
                .to_owned()
        }
        _ => "vane's templates have variables and the filters `raw` and `add_days(N)`, no macros"
            .to_owned(),
    };
    Some((
        format!("Airflow's `macros.{}` is not a vane template", name.trim()),
        hint,
    ))
}

/// A parsed template; rendering cannot fail because every variable was checked when parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    segments: Vec<Segment>,
}

/// Jinja statements (`{% if ... %}`, `{% for ... %}`) in a template, as byte ranges of its text:
/// vane's templates have none, so such text reaches the shell as written, where it fails or,
/// worse, does something else. Only a known statement word counts, so `printf '{%s}'` is not
/// taken for one.
pub(crate) fn jinja_statements(text: &str) -> Vec<std::ops::Range<usize>> {
    const WORDS: [&str; 14] = [
        "if", "elif", "else", "endif", "for", "endfor", "set", "macro", "endmacro", "block",
        "endblock", "include", "extends", "raw",
    ];
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(open) = text[at..].find("{%").map(|i| i + at) {
        let inner = text[open + 2..].trim_start_matches(['-', '+']).trim_start();
        let word: String = inner
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        let end = text[open..].find("%}").map_or(text.len(), |i| open + i + 2);
        if WORDS.contains(&word.as_str()) {
            found.push(open..end);
        }
        at = open + 2;
    }
    found
}

/// Where a template uses `| raw`, as byte ranges of its text.
pub(crate) type RawUses = Vec<std::ops::Range<usize>>;

/// A problem found while parsing a template, with its byte range inside the template text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TemplateProblem {
    pub(crate) range: std::ops::Range<usize>,
    pub(crate) message: String,
    pub(crate) hint: String,
}

impl Template {
    /// Parses `text`, checking every variable against the built-ins and `params`. Both ways,
    /// with the ranges of its `| raw` uses: a template with an error still has them warned
    /// about, as every problem of a file is reported at once.
    pub(crate) fn parse(
        text: &str,
        params: &[&str],
    ) -> Result<(Self, RawUses), (Vec<TemplateProblem>, RawUses)> {
        let mut segments = Vec::new();
        let mut problems = Vec::new();
        let mut raw_uses = Vec::new();
        let mut rest = 0;
        while let Some(open) = text[rest..].find("{{").map(|i| i + rest) {
            if open > rest {
                segments.push(Segment::Literal(text[rest..open].to_owned()));
            }
            let Some(close) = text[open..].find("}}").map(|i| i + open) else {
                problems.push(TemplateProblem {
                    range: open..text.len(),
                    message: "unclosed `{{` in template".into(),
                    hint: "close it with `}}`, as in `{{ ds }}`".into(),
                });
                rest = text.len();
                break;
            };
            let range = open..close + 2;
            let inner = text[open + 2..close].trim();
            if let Some((message, hint)) = airflow_macro(inner) {
                problems.push(TemplateProblem {
                    range,
                    message,
                    hint,
                });
                rest = close + 2;
                continue;
            }
            let mut parts = inner.split('|');
            let name = parts.next().unwrap_or_default().trim();
            let rest_filters: Vec<&str> = parts.collect();
            let (raw, days) = match filters(&rest_filters, name) {
                Ok(found) => found,
                Err((message, hint)) => {
                    problems.push(TemplateProblem {
                        range,
                        message,
                        hint,
                    });
                    rest = close + 2;
                    continue;
                }
            };
            match resolve(name, params) {
                Ok(var) => {
                    if raw {
                        raw_uses.push(range.clone());
                    }
                    segments.push(Segment::Var { var, raw, days });
                }
                Err((message, hint)) => problems.push(TemplateProblem {
                    range,
                    message,
                    hint,
                }),
            }
            rest = close + 2;
        }
        if rest < text.len() {
            segments.push(Segment::Literal(text[rest..].to_owned()));
        }
        if problems.is_empty() {
            Ok((
                Self {
                    source: text.to_owned(),
                    segments,
                },
                raw_uses,
            ))
        } else {
            Err((problems, raw_uses))
        }
    }

    /// The template as written in the DAG file.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every variable the template uses.
    pub fn variables(&self) -> impl Iterator<Item = &Var> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Var { var, .. } => Some(var),
            Segment::Literal(_) => None,
        })
    }

    /// Renders for a shell command: each value is shell-quoted unless marked `raw`.
    pub fn render_shell(&self, lookup: impl Fn(&Var) -> String) -> String {
        self.render(lookup, true)
    }

    /// Renders for an environment value or path: values are inserted as they are.
    pub fn render_plain(&self, lookup: impl Fn(&Var) -> String) -> String {
        self.render(lookup, false)
    }

    fn render(&self, lookup: impl Fn(&Var) -> String, quote: bool) -> String {
        let mut out = String::with_capacity(self.source.len());
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Var { var, raw, days } => {
                    let value = match days {
                        0 => lookup(var),
                        days => add_days(&lookup(var), *days),
                    };
                    if quote && !raw {
                        let _ = write!(out, "{}", shell_quote(&value));
                    } else {
                        out.push_str(&value);
                    }
                }
            }
        }
        out
    }
}

fn resolve(name: &str, params: &[&str]) -> Result<Var, (String, String)> {
    if let Some(param) = name.strip_prefix("params.") {
        if params.contains(&param) {
            return Ok(Var::Param(param.to_owned()));
        }
        let hint = match crate::diag::did_you_mean(param, params.iter().copied()) {
            Some(close) => format!("did you mean `params.{close}`?"),
            None if params.is_empty() => "declare it under [params] with a default value".into(),
            None => format!("declare it under [params]; declared: {}", params.join(", ")),
        };
        return Err((format!("unknown parameter `{param}` in template"), hint));
    }
    if let Some((builtin, _)) = BUILTIN_VARIABLES.iter().find(|(b, _)| *b == name) {
        return Ok(Var::Builtin(builtin));
    }
    let names = BUILTIN_VARIABLES.iter().map(|(b, _)| *b);
    let hint = match crate::diag::did_you_mean(name, names) {
        Some(close) => format!("did you mean `{close}`?"),
        None if params.contains(&name) => format!("parameters are written `params.{name}`"),
        None => format!(
            "known variables: {}, params.NAME",
            BUILTIN_VARIABLES
                .iter()
                .map(|(b, _)| *b)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Err((format!("unknown template variable `{name}`"), hint))
}

/// Quotes `value` for POSIX `sh` so that it is always one word and never syntax.
pub fn shell_quote(value: &str) -> String {
    let safe = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:=+@%,".contains(&b));
    if safe {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(var: &Var) -> String {
        match var {
            Var::Builtin(name) => format!("<{name}>"),
            Var::Param(p) if p == "evil" => "x; touch pwned".into(),
            Var::Param(p) => format!("[{p}]"),
        }
    }

    #[test]
    fn hostile_values_stay_one_word() {
        let (t, raw) = Template::parse("echo {{ params.evil }}", &["evil"]).unwrap();
        assert!(raw.is_empty());
        assert_eq!(t.render_shell(lookup), "echo 'x; touch pwned'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("2026-01-01"), "2026-01-01");
    }

    #[test]
    fn raw_is_explicit_and_reported() {
        let (t, raw) = Template::parse("echo {{params.evil|raw}}", &["evil"]).unwrap();
        assert_eq!(raw, vec![5..24]);
        assert_eq!(t.render_shell(lookup), "echo x; touch pwned");
    }

    #[test]
    fn jinja_statements_are_found_and_printf_formats_are_not() {
        let text = "{% if x %}y{% endif %} printf '{%s}' {%- for a in b -%}";
        let found: Vec<&str> = jinja_statements(text)
            .into_iter()
            .map(|r| &text[r])
            .collect();
        assert_eq!(found, ["{% if x %}", "{% endif %}", "{%- for a in b -%}"]);
        assert!(jinja_statements("date +%s; echo {%d}").is_empty());
    }

    #[test]
    fn unknown_variables_are_errors_with_suggestions() {
        let problems = Template::parse(
            "a {{ dss }} {{DS}} {{ params.max_acc }} {{ x",
            &["min_accuracy"],
        )
        .unwrap_err()
        .0;
        let messages: Vec<_> = problems
            .iter()
            .map(|p| (p.message.as_str(), p.hint.as_str()))
            .collect();
        assert_eq!(
            messages,
            vec![
                ("unknown template variable `dss`", "did you mean `ds`?"),
                ("unknown template variable `DS`", "did you mean `ds`?"),
                (
                    "unknown parameter `max_acc` in template",
                    "declare it under [params]; declared: min_accuracy"
                ),
                (
                    "unclosed `{{` in template",
                    "close it with `}}`, as in `{{ ds }}`"
                ),
            ]
        );
        assert_eq!(problems[0].range, 2..11);
    }

    #[test]
    fn plain_rendering_does_not_quote() {
        let (t, _) = Template::parse("{{ ds }}/{{ params.evil }}", &["evil"]).unwrap();
        assert_eq!(t.render_plain(lookup), "<ds>/x; touch pwned");
    }

    #[test]
    fn dates_move_by_days_in_their_own_format() {
        let (t, _) = Template::parse(
            "{{ ds | add_days(-7) }} {{ ds_nodash|add_days(1) }} {{ next_ds | add_days( 2 ) | raw }}",
            &[],
        )
        .unwrap();
        let dates = |var: &Var| match var {
            Var::Builtin("ds" | "next_ds") => "2026-03-01".to_owned(),
            Var::Builtin("ds_nodash") => "20260228".to_owned(),
            _ => String::new(),
        };
        assert_eq!(t.render_shell(dates), "2026-02-22 20260301 2026-03-03");
    }

    #[test]
    fn filters_and_airflow_macros_are_checked_with_the_fix() {
        let problems = Template::parse(
            "{{ run_id | add_days(1) }} {{ ds | add_days(a) }} {{ ds | upper }} {{ ds | add_day(1) }} {{ macros.ds_add(ds, -7) }}",
            &[],
        )
        .unwrap_err()
        .0;
        let got: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.message.as_str(), p.hint.as_str()))
            .collect();
        assert_eq!(got[0].0, "`add_days` moves a date, and `run_id` is not one");
        assert_eq!(got[1].0, "`add_days(a)` needs a whole number of days");
        // A huge move panicked at render time; it is refused at load.
        let (problems, _) = Template::parse("{{ ds | add_days(99999999999) }}", &[]).unwrap_err();
        assert_eq!(
            problems[0].message,
            "`add_days(99999999999)` moves the date too far"
        );
        assert_eq!(add_days("2026-01-01", i64::MAX), "2026-01-01");
        assert_eq!(got[2].0, "unknown template filter `upper`");
        assert!(
            got[3].1.starts_with("did you mean `add_days`?"),
            "{:?}",
            got[3]
        );
        assert_eq!(
            got[4],
            (
                "Airflow's `macros.ds_add` is not a vane template",
                "write `{{ ds | add_days(-7) }}`"
            )
        );
    }
}
