//! The diagnostic checker: the building block every config section of vane is read with, so a
//! mistake in any of them is reported the same way, with file, line, column and a hint.
//!
//! A section's crate declares its keys as a table of [`Field`]s (name, [`Ty`], default,
//! documentation); [`Checker::table`] checks a TOML table against it (unknown keys with a
//! "did you mean", types, bounds, required keys) and returns the values that passed as
//! [`Checked`]. What the table cannot say (two keys that exclude each other, a reference to a
//! channel) the section's own code reports through [`Checker::error`] and
//! [`Checker::warning`], pointing at the value's span. Every problem is collected; nothing
//! stops at the first.
//!
//! Who uses it: `vane-dag` for the DAG file and `[scheduler]`/`[pools]`; `vane-alerts` for
//! `[alerts]` and a DAG file's `[[alerts]]`; `vane-check` and `vane-deploy` for the keys of a
//! `validate` or `deploy` task, through [`TaskChecker`] (see [`crate::Registry`]). The TOML
//! tree types are re-exported so a section's crate reads the same `toml` version.
//!
//! ```
//! use vane_dag::config::{Checker, DeTable, Field, Ty, field};
//!
//! const KEYS: &[Field] = &[field("retries", Ty::Int { min: 0, max: 5 }, "Retries.")];
//! let source = "[hook]\nretries = 9\n";
//! let (root, _) = DeTable::parse_recoverable(source);
//! let mut cx = Checker::new(source);
//! let hook = root.get_ref().get("hook").unwrap();
//! let keys = cx.table(hook, &[KEYS], "[hook]");
//! assert_eq!(keys.int("retries"), None);
//! let diagnostics = cx.finish();
//! assert_eq!(diagnostics[0].message, "`retries = 9` is out of range");
//! ```

use std::fmt::Write as _;

pub use toml::Spanned;
pub use toml::de::{DeTable, DeValue};

pub use crate::parse::{
    Checked, Checker, Entry, TaskChecker, found, integer, is_ident, number, suggestion, type_name,
};
pub use crate::spec::{DAY_SECS, Field, Ty, field, required, with_default};
pub use crate::url::{Host, Url, UrlError};

/// A TOML value in one canonical spelling: tables with their keys sorted, strings quoted
/// one way, numbers in decimal, no whitespace but single spaces. Two values that read the
/// same (key order, quoting, `1_000` or `0x3e8`, layout) give the same text, and nothing of
/// vane's Rust types enters it; built-in tasks' cache identity is made of it.
pub fn canonical(value: &DeValue<'_>) -> String {
    let mut out = String::new();
    write_canonical(&mut out, value);
    out
}

fn write_canonical(out: &mut String, value: &DeValue<'_>) {
    match value {
        DeValue::String(s) => write_string(out, s),
        DeValue::Integer(i) => match integer(i) {
            Some(n) => {
                let _ = write!(out, "{n}");
            }
            None => out.push_str(i.as_str()),
        },
        DeValue::Float(f) => match f.as_str().replace('_', "").parse::<f64>() {
            Ok(x) => {
                let _ = write!(out, "{x:?}");
            }
            Err(_) => out.push_str(f.as_str()),
        },
        DeValue::Boolean(b) => {
            let _ = write!(out, "{b}");
        }
        DeValue::Datetime(dt) => {
            let _ = write!(out, "{dt}");
        }
        DeValue::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_canonical(out, item.get_ref());
            }
            out.push(']');
        }
        DeValue::Table(table) => write_table(out, table, |_| true),
    }
}

/// The keys of `table` for which `keep` holds, as one canonical table (see [`canonical`]).
pub fn canonical_keys(table: &DeTable<'_>, keep: impl Fn(&str) -> bool) -> String {
    let mut out = String::new();
    write_table(&mut out, table, keep);
    out
}

fn write_table(out: &mut String, table: &DeTable<'_>, keep: impl Fn(&str) -> bool) {
    let mut entries: Vec<_> = table.iter().filter(|(k, _)| keep(k.get_ref())).collect();
    entries.sort_by(|a, b| a.0.get_ref().cmp(b.0.get_ref()));
    out.push('{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_string(out, key.get_ref());
        out.push_str(" = ");
        write_canonical(out, value.get_ref());
    }
    out.push('}');
}

fn write_string(out: &mut String, text: &str) {
    // JSON's escaping is valid TOML basic-string escaping.
    out.push_str(&serde_json::Value::from(text).to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(source: &str) -> String {
        let (root, errors) = DeTable::parse_recoverable(source);
        assert!(errors.is_empty(), "{errors:?}");
        canonical(&DeValue::Table(root.into_inner()))
    }

    #[test]
    fn equal_values_written_differently_read_the_same() {
        let a = canon("dataset = \"d.csv\"\nrows = { min = 1_000, max = 0x7d0 }\nratio = 1.50\n");
        let b = canon("ratio=1.5\ndataset=\"d.csv\"\n[rows]\nmax=2000\nmin = 1000\n\n\n");
        let c = canon("rows.min = 1000\nrows.max = 2000\nratio = 15e-1\ndataset = 'd.csv'\n");
        assert_eq!(a, b);
        assert_eq!(
            a,
            r#"{"dataset" = "d.csv", "ratio" = 1.5, "rows" = {"max" = 2000, "min" = 1000}}"#
        );
        assert_eq!(a, c);
        assert_ne!(
            a,
            canon("dataset = \"d.csv\"\nrows = { min = 1000, max = 2001 }\nratio = 1.5\n")
        );
    }
}
