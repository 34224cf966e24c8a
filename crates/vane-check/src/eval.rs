//! Evaluating each check against a dataset, and the bounds they are held to.

use std::collections::HashSet;

use serde_json::Value as Json;
use vane_dag::{AgreementMethod, AutoRule, Bound, Check, CheckKind, ColumnType, DriftMethod};
use vane_store::{CheckResult, CheckStatus, CheckStore, LearnFrom, RunId};

use crate::dataset::{Column, Dataset, Kind};
use crate::stats;

/// Offending rows shown per check.
pub(crate) const SHOWN_ROWS: usize = 5;

/// A number as a person reads it: integers without decimals, others with up to four.
pub(crate) fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// `runs 3–12`, or `runs 1, 3–5` when some are missing.
fn run_list(runs: &[RunId]) -> String {
    let mut sorted = runs.to_vec();
    sorted.sort_unstable();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            sorted[i].to_string()
        } else {
            format!("{}–{}", sorted[i], sorted[j])
        });
        i = j + 1;
    }
    let word = if sorted.len() == 1 { "run" } else { "runs" };
    format!("{word} {}", parts.join(", "))
}

/// A bound settled to numbers, with how it was reached.
enum Resolved {
    Range {
        min: Option<f64>,
        max: Option<f64>,
        derivation: String,
    },
    Learning(String),
}

fn range_text(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(lo), Some(hi)) if lo == hi => format!("= {}", num(lo)),
        (Some(lo), Some(hi)) => format!("[{}, {}]", num(lo), num(hi)),
        (Some(lo), None) => format!(">= {}", num(lo)),
        (None, Some(hi)) => format!("<= {}", num(hi)),
        (None, None) => "none".into(),
    }
}

/// What evaluating needs besides the data.
pub(crate) struct Context<'a> {
    pub(crate) store: &'a dyn CheckStore,
    pub(crate) from: LearnFrom<'a>,
    /// The drift baseline: its run and profile.
    pub(crate) baseline: Option<(RunId, Json)>,
}

impl Context<'_> {
    fn resolve(
        &self,
        bound: &Bound,
        name: &str,
        hash: &str,
    ) -> Result<Resolved, vane_store::StoreError> {
        let rule: AutoRule = match bound {
            Bound::Fixed { min, max } => {
                return Ok(Resolved::Range {
                    min: *min,
                    max: *max,
                    derivation: "fixed".into(),
                });
            }
            Bound::Auto(rule) => *rule,
        };
        let history = self
            .store
            .learnable_values(&self.from, name, hash, rule.window as usize)?;
        if history.len() < rule.warmup as usize {
            return Ok(Resolved::Learning(format!(
                "auto: learning, {} of the {} good runs needed so far",
                history.len(),
                rule.warmup
            )));
        }
        let values: Vec<f64> = history.iter().map(|(_, v)| *v).collect();
        let runs: Vec<RunId> = history.iter().map(|(r, _)| *r).collect();
        let (m, s) = (stats::mean(&values), stats::std(&values));
        Ok(Resolved::Range {
            min: Some(m - rule.k * s),
            max: Some(m + rule.k * s),
            derivation: format!(
                "auto: mean {} ± {} × {} over the last {} good runs ({})",
                num(m),
                num(rule.k),
                num(s),
                values.len(),
                run_list(&runs)
            ),
        })
    }
}

/// The outcome of one check before it is recorded.
struct Outcome {
    passed: bool,
    observed: Option<f64>,
    bound: Option<String>,
    derivation: Option<String>,
    detail: String,
    offending: Vec<(u64, String)>,
    learning: bool,
}

impl Outcome {
    fn simple(passed: bool, observed: Option<f64>, bound: &str, detail: String) -> Self {
        Outcome {
            passed,
            observed,
            bound: Some(bound.to_owned()),
            derivation: Some("fixed".into()),
            detail,
            offending: Vec::new(),
            learning: false,
        }
    }
}

/// Rows of a column whose value fails `bad`: the first few shown, and how many in all.
fn offending<'c>(
    data: &Dataset,
    column: &'c Column,
    mut bad: impl FnMut(Option<&'c crate::dataset::Value>) -> bool,
) -> (Vec<(u64, String)>, usize) {
    shown_rows(data, column.values().enumerate().filter(|(_, v)| bad(*v)))
}

/// The first few of `rows` (offending rows, in order) as a person reads them, and how many.
fn shown_rows<'c>(
    data: &Dataset,
    rows: impl Iterator<Item = (usize, Option<&'c crate::dataset::Value>)>,
) -> (Vec<(u64, String)>, usize) {
    let mut shown = Vec::new();
    let mut count = 0;
    for (row, value) in rows {
        count += 1;
        if shown.len() < SHOWN_ROWS {
            let text = value.map_or("(missing)".to_owned(), |v| v.text.clone());
            shown.push((data.lines[row], text));
        }
    }
    (shown, count)
}

fn rows_word(n: usize) -> &'static str {
    if n == 1 { "row" } else { "rows" }
}

/// Evaluates every check; a check of a missing column is left out (its `present` check fails).
pub(crate) fn evaluate(
    cx: &Context<'_>,
    data: &Dataset,
    checks: &[Check],
    hash: impl Fn(&Check) -> String,
) -> Result<Vec<CheckResult>, vane_store::StoreError> {
    let mut results = Vec::new();
    for check in checks {
        let column = match &check.column {
            Some(name) => match data.column(name) {
                Some(c) => Some(c),
                None if matches!(check.kind, CheckKind::Present) => None,
                None => continue,
            },
            None => None,
        };
        let definition_hash = hash(check);
        let Some(outcome) = one(cx, data, check, checks, column, &definition_hash)? else {
            continue;
        };
        let status = if outcome.learning {
            CheckStatus::Learning
        } else if outcome.passed {
            CheckStatus::Pass
        } else if check.severity == vane_dag::CheckSeverity::Warn {
            CheckStatus::Warn
        } else {
            CheckStatus::Fail
        };
        results.push(CheckResult {
            name: check.name.clone(),
            column: check.column.clone(),
            severity: check.severity.as_str().to_owned(),
            status,
            observed: outcome.observed,
            bound: outcome.bound,
            derivation: outcome.derivation,
            detail: outcome.detail,
            offending: outcome.offending,
            definition_hash,
        });
    }
    Ok(results)
}

/// A measured number held to a bound (fixed or learned).
fn bounded(
    cx: &Context<'_>,
    check: &Check,
    bound: &Bound,
    hash: &str,
    observed: f64,
    what: &str,
) -> Result<Outcome, vane_store::StoreError> {
    Ok(match cx.resolve(bound, &check.name, hash)? {
        Resolved::Learning(derivation) => Outcome {
            passed: true,
            observed: Some(observed),
            bound: None,
            derivation: Some(derivation),
            detail: format!("{what} {}", num(observed)),
            offending: Vec::new(),
            learning: true,
        },
        Resolved::Range {
            min,
            max,
            derivation,
        } => {
            let low = min.is_some_and(|lo| observed < lo);
            let high = max.is_some_and(|hi| observed > hi);
            let detail = if low {
                format!(
                    "{what} {} is below {}",
                    num(observed),
                    num(min.unwrap_or_default())
                )
            } else if high {
                format!(
                    "{what} {} is above {}",
                    num(observed),
                    num(max.unwrap_or_default())
                )
            } else {
                format!("{what} {}", num(observed))
            };
            Outcome {
                passed: !low && !high,
                observed: Some(observed),
                bound: Some(range_text(min, max)),
                derivation: Some(derivation),
                detail,
                offending: Vec::new(),
                learning: false,
            }
        }
    })
}

fn type_ok(t: ColumnType, v: &crate::dataset::Value, data: &Dataset) -> bool {
    match t {
        ColumnType::Integer => v.kind == Kind::Int,
        ColumnType::Float | ColumnType::Number => matches!(v.kind, Kind::Int | Kind::Float),
        ColumnType::Bool => v.kind == Kind::Bool,
        // Every CSV field is text; JSON says whether a value is a string.
        ColumnType::String => data.format == vane_dag::Format::Csv || v.kind == Kind::Str,
    }
}

fn one(
    cx: &Context<'_>,
    data: &Dataset,
    check: &Check,
    checks: &[Check],
    column: Option<&Column>,
    hash: &str,
) -> Result<Option<Outcome>, vane_store::StoreError> {
    let col_name = check.column.as_deref().unwrap_or("");
    let present = |c: &Column| c.present().count();
    let outcome = match (&check.kind, column) {
        (CheckKind::Rows(bound), _) => {
            bounded(cx, check, bound, hash, data.rows() as f64, "row count")?
        }
        (CheckKind::Present, None) => {
            let names: Vec<&str> = data.columns.iter().map(|c| c.name.as_str()).collect();
            Outcome::simple(
                false,
                Some(0.0),
                "present",
                format!(
                    "column `{col_name}` is missing; the dataset has: {}",
                    names.join(", ")
                ),
            )
        }
        (CheckKind::Present, Some(_)) => Outcome::simple(
            true,
            Some(1.0),
            "present",
            format!("column `{col_name}` is present"),
        ),
        (
            CheckKind::Agreement {
                item,
                annotator,
                label,
                method,
                min,
            },
            _,
        ) => agreement_check(data, item, annotator, label, *method, *min),
        (_, None) => return Ok(None),
        (CheckKind::Type(t), Some(c)) => {
            let (shown, count) = offending(data, c, |v| v.is_some_and(|v| !type_ok(*t, v, data)));
            let mut o = Outcome::simple(
                count == 0,
                Some(count as f64),
                &format!("every value {}", t.as_str()),
                if count == 0 {
                    format!("every value is {}", t.as_str())
                } else {
                    format!("{count} {} not {}", rows_word(count), t.as_str())
                },
            );
            o.offending = shown;
            o
        }
        (CheckKind::Min(bound) | CheckKind::Max(bound), Some(c)) => {
            let is_min = matches!(check.kind, CheckKind::Min(_));
            let nums: Vec<f64> = c.present().filter_map(|v| v.number()).collect();
            let (shown, count) = offending(data, c, |v| {
                v.and_then(|v| v.number())
                    .is_some_and(|n| if is_min { n < *bound } else { n > *bound })
            });
            let extreme = if is_min {
                nums.iter().copied().reduce(f64::min)
            } else {
                nums.iter().copied().reduce(f64::max)
            };
            let (word, op) = if is_min {
                ("smallest", ">=")
            } else {
                ("largest", "<=")
            };
            let detail = match extreme {
                None => "no numeric value".to_owned(),
                Some(x) if count == 0 => format!("{word} value {}", num(x)),
                Some(x) => format!(
                    "{word} value {}; {count} {} outside {op} {}",
                    num(x),
                    rows_word(count),
                    num(*bound)
                ),
            };
            let mut o = Outcome::simple(
                count == 0,
                extreme,
                &format!("{op} {}", num(*bound)),
                detail,
            );
            o.offending = shown;
            o
        }
        (CheckKind::Completeness(bound), Some(c)) => {
            let total = c.len();
            let share = if total == 0 {
                1.0
            } else {
                present(c) as f64 / total as f64
            };
            let mut o = bounded(cx, check, bound, hash, share, "non-null share")?;
            let (shown, count) = offending(data, c, |v| v.is_none());
            if count > 0 {
                o.detail
                    .push_str(&format!("; {count} of {total} values missing"));
            }
            if !o.passed {
                o.offending = shown;
            }
            o
        }
        (CheckKind::Allowed(allowed), Some(c)) => {
            let set: HashSet<&str> = allowed.iter().map(String::as_str).collect();
            let (shown, count) = shown_rows(data, c.rows_where(|v| !set.contains(v.text.as_str())));
            let mut o = Outcome::simple(
                count == 0,
                Some(count as f64),
                &format!("one of {}", allowed.join(", ")),
                if count == 0 {
                    "every value allowed".to_owned()
                } else {
                    format!("{count} {} with a value not allowed", rows_word(count))
                },
            );
            o.offending = shown;
            o
        }
        (CheckKind::Distinct(bound), Some(c)) => {
            let seen: HashSet<&str> = c
                .distinct_counts()
                .into_iter()
                .map(|(v, _)| v.text.as_str())
                .collect();
            let mut o = bounded(cx, check, bound, hash, seen.len() as f64, "distinct values")?;
            if !o.passed {
                // A dropped category is the usual cause: name it when `allowed` lists them.
                let allowed = checks.iter().find_map(|other| match &other.kind {
                    CheckKind::Allowed(values) if other.column == check.column => Some(values),
                    _ => None,
                });
                let missing: Vec<&str> = allowed
                    .into_iter()
                    .flatten()
                    .map(String::as_str)
                    .filter(|a| !seen.contains(a))
                    .collect();
                if !missing.is_empty() {
                    o.detail
                        .push_str(&format!("; never seen: {}", missing.join(", ")));
                } else if seen.len() <= 20 {
                    let mut list: Vec<&str> = seen.into_iter().collect();
                    list.sort_unstable();
                    o.detail.push_str(&format!("; seen: {}", list.join(", ")));
                }
            }
            o
        }
        (CheckKind::Unique, Some(c)) => {
            let (shown, count) = shown_rows(data, c.repeats());
            let mut o = Outcome::simple(
                count == 0,
                Some(count as f64),
                "no repeated value",
                if count == 0 {
                    "every value unique".to_owned()
                } else {
                    format!("{count} {} repeat an earlier value", rows_word(count))
                },
            );
            o.offending = shown;
            o
        }
        (CheckKind::Mean(bound) | CheckKind::Std(bound), Some(c)) => {
            let nums: Vec<f64> = c.present().filter_map(|v| v.number()).collect();
            if nums.is_empty() {
                Outcome::simple(
                    false,
                    None,
                    "a number",
                    "no numeric value to measure".into(),
                )
            } else if matches!(check.kind, CheckKind::Mean(_)) {
                bounded(cx, check, bound, hash, stats::mean(&nums), "mean")?
            } else {
                bounded(
                    cx,
                    check,
                    bound,
                    hash,
                    stats::std(&nums),
                    "standard deviation",
                )?
            }
        }
        (CheckKind::Drift { method, max }, Some(c)) => drift(cx, c, *method, *max),
    };
    Ok(Some(outcome))
}

fn agreement_check(
    data: &Dataset,
    item: &str,
    annotator: &str,
    label: &str,
    method: AgreementMethod,
    min: f64,
) -> Outcome {
    let columns = [item, annotator, label].map(|n| (n, data.column(n)));
    let missing: Vec<&str> = columns
        .iter()
        .filter(|(_, c)| c.is_none())
        .map(|(n, _)| *n)
        .collect();
    let [(_, Some(i)), (_, Some(a)), (_, Some(l))] = columns else {
        return Outcome::simple(
            false,
            None,
            &format!(">= {}", num(min)),
            format!("the dataset has no column {}", missing.join(", ")),
        );
    };
    let (bound, what) = match method {
        AgreementMethod::Kappa => (format!(">= {}", num(min)), "Cohen's kappa"),
        AgreementMethod::Percent => (format!(">= {}%", num(min)), "agreement"),
    };
    let Some(agr) = stats::agreement(data, i, a, l) else {
        return Outcome::simple(
            false,
            None,
            &bound,
            "no item is labeled by two or more annotators: agreement cannot be measured".into(),
        );
    };
    let value = match method {
        AgreementMethod::Kappa => agr.kappa,
        AgreementMethod::Percent => agr.percent,
    };
    let shown = match method {
        AgreementMethod::Kappa => num(value),
        AgreementMethod::Percent => format!("{}%", num(value)),
    };
    let mut o = Outcome::simple(
        value >= min,
        Some(value),
        &bound,
        format!(
            "{what} {shown} over {} items labeled by two or more annotators ({} pairs); {} with disagreement",
            agr.items,
            agr.pairs,
            agr.disagreements.len()
        ),
    );
    if !o.passed {
        o.offending = agr.disagreements.into_iter().take(SHOWN_ROWS).collect();
    }
    o
}

fn drift(cx: &Context<'_>, c: &Column, method: DriftMethod, max: f64) -> Outcome {
    let bound = format!("<= {}", num(max));
    let Some((run, profile)) = &cx.baseline else {
        return Outcome::simple(true, None, &bound, "no baseline yet".into());
    };
    let Some(base) = profile["columns"].get(&c.name) else {
        return Outcome::simple(
            true,
            None,
            &bound,
            format!(
                "no baseline yet: run {run} did not have column `{}`",
                c.name
            ),
        );
    };
    let Some(d) = stats::distributions(base, c) else {
        return Outcome::simple(true, None, &bound, "no values to compare".into());
    };
    let (value, name) = match method {
        DriftMethod::Psi => (stats::psi(&d), "PSI"),
        DriftMethod::Js => (stats::js(&d), "Jensen–Shannon distance"),
    };
    let mut o = Outcome::simple(
        value <= max,
        Some(value),
        &bound,
        format!("{name} {} against run {run} ({})", num(value), d.basis),
    );
    o.derivation = Some(format!("fixed; baseline: run {run}, the latest good run"));
    o
}
