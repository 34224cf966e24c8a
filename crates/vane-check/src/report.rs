//! The report a validate task prints to its log, for a person deciding what to do.

use std::fmt::Write;
use std::path::Path;

use vane_store::{CheckResult, CheckStatus};

use crate::dataset::Dataset;

fn format_name(data: &Dataset) -> &'static str {
    match data.format {
        crate::Format::Csv => "CSV",
        crate::Format::Jsonl => "JSON Lines",
    }
}

/// Failures first (errors, then warnings) in full; then one line per other check.
pub(crate) fn render(path: &Path, data: &Dataset, results: &[CheckResult], rerun: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "validating {} ({}, {} rows, {} columns)",
        path.display(),
        format_name(data),
        data.rows(),
        data.columns.len()
    );
    let count = |s: CheckStatus| results.iter().filter(|r| r.status == s).count();
    for status in [CheckStatus::Fail, CheckStatus::Warn] {
        for r in results.iter().filter(|r| r.status == status) {
            let head = if status == CheckStatus::Fail {
                "FAILED"
            } else {
                "WARNING"
            };
            let _ = writeln!(out, "\n{head} {} (severity {})", r.name, r.severity);
            if let Some(column) = &r.column {
                let _ = writeln!(out, "  column:   {column}");
            }
            let _ = writeln!(out, "  seen:     {}", r.detail);
            if let Some(bound) = &r.bound {
                let _ = writeln!(out, "  bound:    {bound}");
            }
            if let Some(derivation) = &r.derivation {
                let _ = writeln!(out, "  from:     {derivation}");
            }
            if !r.offending.is_empty() {
                let _ = writeln!(out, "  rows:");
                for (line, value) in &r.offending {
                    let _ = writeln!(out, "    line {line}: {value}");
                }
            }
        }
    }
    let others: Vec<&CheckResult> = results
        .iter()
        .filter(|r| matches!(r.status, CheckStatus::Pass | CheckStatus::Learning))
        .collect();
    if !others.is_empty() {
        let _ = writeln!(out);
        for r in others {
            let mut line = format!("{:<8} {}: {}", r.status.as_str(), r.name, r.detail);
            if let Some(bound) = r
                .bound
                .as_ref()
                .filter(|b| b.starts_with(['<', '>', '=', '[']))
            {
                let _ = write!(line, " (bound {bound})");
            }
            if let Some(d) = r.derivation.as_deref().filter(|d| *d != "fixed") {
                let _ = write!(line, " [{d}]");
            }
            let _ = writeln!(out, "{line}");
        }
    }
    let (failed, warned) = (count(CheckStatus::Fail), count(CheckStatus::Warn));
    let _ = writeln!(
        out,
        "\n{} checks: {} passed, {} failed, {} warned, {} learning",
        results.len(),
        count(CheckStatus::Pass),
        failed,
        warned,
        count(CheckStatus::Learning)
    );
    if failed > 0 {
        let _ = writeln!(
            out,
            "validation failed: fix the data (or the checks) and rerun with `{rerun}`"
        );
    }
    out
}
