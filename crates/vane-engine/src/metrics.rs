//! The metrics protocol: a task reports numbers by writing lines to the file named by
//! `$VANE_METRICS`.
//!
//! One metric per line, `name value`, separated by spaces or a tab:
//!
//! ```text
//! # comments and blank lines are ignored
//! accuracy 0.912
//! rows 48213
//! latency.p95_ms 41.5
//! ```
//!
//! A name starts with a letter or `_` and goes on with letters, digits, `_`, `.`, `-` or `:`
//! (at most 200 characters); a value is a finite decimal number. A name written twice keeps
//! its last value, so a task may report progress as it goes. One line of text per metric was
//! chosen over JSON because every language (and `echo` in a shell step) can write it without a
//! library, and because appending lines never leaves a half-written document behind.

use std::path::Path;

/// Metrics read from a report, in the order first written, and the lines that were not
/// understood (as messages naming the line).
#[derive(Debug, Default, PartialEq)]
pub struct Report {
    pub metrics: Vec<(String, f64)>,
    pub problems: Vec<String>,
}

/// Reads the report at `path`; a task that wrote none has reported nothing.
pub fn read(path: &Path) -> Report {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Report::default(),
        Err(e) => Report {
            metrics: Vec::new(),
            problems: vec![format!("cannot read {}: {e}", path.display())],
        },
    }
}

pub fn parse(text: &str) -> Report {
    let mut report = Report::default();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(name), Some(value), None) = (fields.next(), fields.next(), fields.next()) else {
            report
                .problems
                .push(format!("line {}: `{line}` is not `name value`", number + 1));
            continue;
        };
        if !is_metric_name(name) {
            report.problems.push(format!(
                "line {}: `{name}` is not a metric name (letters, digits, `_`, `.`, `-`, `:`, starting with a letter or `_`)",
                number + 1
            ));
            continue;
        }
        match value.parse::<f64>() {
            Ok(v) if v.is_finite() => match report.metrics.iter_mut().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = v,
                None => report.metrics.push((name.to_owned(), v)),
            },
            _ => report.problems.push(format!(
                "line {}: the value of `{name}`, `{value}`, is not a finite number",
                number + 1
            )),
        }
    }
    report
}

/// Whether `name` may name a metric.
pub fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && name.len() <= 200
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-:".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_and_values_and_keeps_the_last_value_of_a_name() {
        let report = parse("# eval\naccuracy 0.8\n\nrows\t120\naccuracy 0.91\n");
        assert_eq!(
            report.metrics,
            vec![("accuracy".into(), 0.91), ("rows".into(), 120.0)]
        );
        assert!(report.problems.is_empty());
    }

    #[test]
    fn names_each_line_it_cannot_read() {
        let report = parse("ok 1\naccuracy\n9lives 3\nloss NaN\nauc 0.7 extra\n");
        assert_eq!(report.metrics, vec![("ok".into(), 1.0)]);
        assert_eq!(report.problems.len(), 4);
        assert!(report.problems[0].starts_with("line 2:"), "{report:?}");
        assert!(
            report.problems[2].contains("not a finite number"),
            "{report:?}"
        );
    }
}
