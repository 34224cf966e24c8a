//! Evaluating each check against a dataset, and the bounds they are held to.

use std::collections::HashSet;

use crate::{AgreementMethod, AutoRule, Bound, Check, CheckKind, ColumnType, DriftMethod};
use serde_json::Value as Json;
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
        while j + 1 < sorted.len() && sorted[j + 1].0 == sorted[j].0 + 1 {
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
    shown_rows_as(data, rows, |v| v.text.clone())
}

/// [`shown_rows`], each value shown as `show` puts it.
fn shown_rows_as<'c>(
    data: &Dataset,
    rows: impl Iterator<Item = (usize, Option<&'c crate::dataset::Value>)>,
    show: impl Fn(&crate::dataset::Value) -> String,
) -> (Vec<(u64, String)>, usize) {
    let mut shown = Vec::new();
    let mut count = 0;
    for (row, value) in rows {
        count += 1;
        if shown.len() < SHOWN_ROWS {
            let text = value.map_or("(missing)".to_owned(), &show);
            shown.push((data.lines[row], text));
        }
    }
    (shown, count)
}

/// A value as an offending row shows it: text, and `(not a number)` when it is none.
fn shown_number(v: &crate::dataset::Value) -> String {
    match v.number() {
        Some(_) => v.text.clone(),
        None => format!("{} (not a number)", v.text),
    }
}

/// Rows holding a value that is not a number.
fn non_numeric(c: &Column) -> usize {
    c.distinct_counts()
        .into_iter()
        .filter(|(v, _)| v.number().is_none())
        .map(|(_, n)| n)
        .sum()
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
        } else if check.severity == crate::CheckSeverity::Warn {
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

/// The smallest (or largest) number of a column, judged per distinct value; values that are
/// not numbers left out.
fn numeric_extreme(c: &Column, smallest: bool) -> Option<f64> {
    let nums = c
        .distinct_counts()
        .into_iter()
        .filter_map(|(v, _)| v.number());
    if smallest {
        nums.reduce(f64::min)
    } else {
        nums.reduce(f64::max)
    }
}

fn type_ok(t: ColumnType, v: &crate::dataset::Value, data: &Dataset) -> bool {
    match t {
        ColumnType::Integer => v.kind == Kind::Int,
        ColumnType::Float | ColumnType::Number => matches!(v.kind, Kind::Int | Kind::Float),
        ColumnType::Bool => v.kind == Kind::Bool,
        // Every CSV field is text; JSON says whether a value is a string.
        ColumnType::String => data.format == crate::Format::Csv || v.kind == Kind::Str,
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
            let has = if names.is_empty() {
                "the dataset has no columns".to_owned()
            } else {
                format!("the dataset has: {}", names.join(", "))
            };
            Outcome::simple(
                false,
                Some(0.0),
                "present",
                format!("column `{col_name}` is missing; {has}"),
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
            // Judged once per distinct value: a value that is not a number offends too.
            let extreme = numeric_extreme(c, is_min);
            let (shown, count) = shown_rows_as(
                data,
                c.rows_where(|v| match v.number() {
                    None => true,
                    Some(n) if is_min => n < *bound,
                    Some(n) => n > *bound,
                }),
                shown_number,
            );
            let not_numbers = non_numeric(c);
            let outside = count - not_numbers;
            let (word, op) = if is_min {
                ("smallest", ">=")
            } else {
                ("largest", "<=")
            };
            let mut detail = match extreme {
                None => "no numeric value".to_owned(),
                Some(x) if outside == 0 => format!("{word} value {}", num(x)),
                Some(x) => format!(
                    "{word} value {}; {outside} {} outside {op} {}",
                    num(x),
                    rows_word(outside),
                    num(*bound)
                ),
            };
            if not_numbers > 0 {
                detail.push_str(&format!(
                    "; {not_numbers} {} not a number",
                    rows_word(not_numbers)
                ));
            }
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
            let (shown, count) = shown_rows(
                data,
                c.rows_where(|v| !allowed.iter().any(|a| a.matches(&v.text, v.number()))),
            );
            let texts: Vec<&str> = allowed.iter().map(|a| a.text.as_str()).collect();
            let mut o = Outcome::simple(
                count == 0,
                Some(count as f64),
                &format!("one of {}", texts.join(", ")),
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
            let values = c.distinct_counts();
            let seen: HashSet<&str> = values.iter().map(|(v, _)| v.text.as_str()).collect();
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
                    .filter(|a| !values.iter().any(|(v, _)| a.matches(&v.text, v.number())))
                    .map(|a| a.text.as_str())
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
            let what = if matches!(check.kind, CheckKind::Mean(_)) {
                "mean"
            } else {
                "standard deviation"
            };
            let not_numbers = non_numeric(c);
            if not_numbers > 0 {
                // The mean of the numbers alone would describe a different column.
                let (shown, count) =
                    shown_rows_as(data, c.rows_where(|v| v.number().is_none()), shown_number);
                let mut o = Outcome::simple(
                    false,
                    None,
                    "every value a number",
                    format!(
                        "{count} {} not a number: no {what} of the column",
                        rows_word(count)
                    ),
                );
                o.offending = shown;
                o
            } else {
                let nums: Vec<f64> = c.present().filter_map(|v| v.number()).collect();
                if nums.is_empty() {
                    Outcome::simple(
                        false,
                        None,
                        "a number",
                        "no numeric value to measure".into(),
                    )
                } else if matches!(check.kind, CheckKind::Mean(_)) {
                    bounded(cx, check, bound, hash, stats::mean(&nums), what)?
                } else {
                    bounded(cx, check, bound, hash, stats::std(&nums), what)?
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use vane_store::SqliteStore;

    /// The results of a validate task with `checks` (TOML under the task) over `data`.
    fn results(checks: &str, data: &Dataset) -> Vec<CheckResult> {
        let source = format!("[tasks.v]\nkind = \"validate\"\ndataset = \"d.csv\"\n{checks}");
        let parsed = vane_dag::parse_dag_with(
            &source,
            "t",
            &vane_dag::Registry::none().kind(&crate::VALIDATE),
        );
        let dag = parsed.dag.expect("the DAG parses");
        let Some(spec) = dag.tasks[0]
            .builtin
            .as_ref()
            .and_then(|b| b.spec::<crate::ValidateSpec>())
        else {
            panic!("not a validate task");
        };
        let store = SqliteStore::open_in_memory().unwrap();
        let cx = Context {
            store: &store,
            from: LearnFrom {
                dag_id: "t",
                task_id: "v",
                exclude_run: RunId(1),
            },
            baseline: None,
        };
        let results = evaluate(&cx, data, &spec.checks, crate::definition_hash).unwrap();
        // The profile and the report of the same data must not fail either.
        let _ = stats::profile(data);
        let _ = crate::report::render(std::path::Path::new("d.csv"), data, &results, "rerun");
        results
    }

    fn csv(checks: &str, text: &str) -> Vec<CheckResult> {
        results(checks, &crate::dataset::read_csv(text).unwrap())
    }

    fn named<'r>(results: &'r [CheckResult], name: &str) -> &'r CheckResult {
        results
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no check {name}: {results:?}"))
    }

    #[test]
    fn min_and_max_count_values_that_are_not_numbers_as_offending() {
        let r = csv(
            "[tasks.v.columns.x]\nmin = 0\nmax = 10\n",
            "x\n5\nabc\n7\n-1\n",
        );
        let min = named(&r, "x.min");
        assert_eq!(min.status, CheckStatus::Fail);
        assert_eq!(
            min.detail,
            "smallest value -1; 1 row outside >= 0; 1 row not a number"
        );
        assert_eq!(
            min.offending,
            vec![(3, "abc (not a number)".to_owned()), (5, "-1".to_owned())]
        );
        let max = named(&r, "x.max");
        assert_eq!(max.status, CheckStatus::Fail);
        assert_eq!(max.detail, "largest value 7; 1 row not a number");
        assert_eq!(max.offending, vec![(3, "abc (not a number)".to_owned())]);
        // No number at all.
        let r = csv("[tasks.v.columns.x]\nmin = 0\n", "x\nabc\n");
        let min = named(&r, "x.min");
        assert_eq!(min.status, CheckStatus::Fail);
        assert_eq!(min.detail, "no numeric value; 1 row not a number");
    }

    #[test]
    fn mean_and_std_fail_when_values_are_not_numbers() {
        let checks = "[tasks.v.columns.x]\nmean = { min = 0, max = 10 }\nstd = { max = 100 }\n";
        let r = csv(checks, "x\n5\nn/a\n7\n\n");
        for name in ["x.mean", "x.std"] {
            let c = named(&r, name);
            assert_eq!(c.status, CheckStatus::Fail, "{name}: {c:?}");
            assert_eq!(c.observed, None);
            assert_eq!(c.offending, vec![(3, "n/a (not a number)".to_owned())]);
        }
        assert_eq!(
            named(&r, "x.mean").detail,
            "1 row not a number: no mean of the column"
        );
        // Numbers only (missing values aside): measured.
        let r = csv(checks, "x\n5\n\n7\n");
        let mean = named(&r, "x.mean");
        assert_eq!(mean.status, CheckStatus::Pass);
        assert_eq!(mean.observed, Some(6.0));
    }

    #[test]
    fn csv_numbers_with_surrounding_spaces_are_numbers() {
        let r = csv(
            "[tasks.v.columns.x]\ntype = \"integer\"\nmin = 0\n",
            "x,y\n -5 ,a\n3,b\n",
        );
        assert_eq!(named(&r, "x.type").status, CheckStatus::Pass);
        let min = named(&r, "x.min");
        assert_eq!(min.detail, "smallest value -5; 1 row outside >= 0");
        // Shown as written.
        assert_eq!(min.offending, vec![(2, " -5 ".to_owned())]);
    }

    #[test]
    fn allowed_numbers_compare_as_numbers_and_strings_as_text() {
        let r = csv(
            "[tasks.v.columns.x]\nallowed = [1.0, 2]\ndistinct = 3\n[tasks.v.columns.s]\nallowed = [\"1\"]\n",
            "x,s\n1.0,1\n1,1.0\n2.00,1\n3,1\n",
        );
        let x = named(&r, "x.allowed");
        assert_eq!(x.detail, "1 row with a value not allowed");
        assert_eq!(x.offending, vec![(5, "3".to_owned())]);
        let s = named(&r, "s.allowed");
        assert_eq!(s.offending, vec![(3, "1.0".to_owned())], "strings are text");
        // 1.0, 1, 2.00 and 3 are four texts, but `allowed` 1 and 2 were both seen.
        let distinct = named(&r, "x.distinct");
        assert!(
            !distinct.detail.contains("never seen"),
            "{}",
            distinct.detail
        );
    }

    #[test]
    fn a_header_only_or_empty_dataset_gives_results_not_a_panic() {
        let checks = "rows = { min = 1 }\n\
            [tasks.v.columns.x]\ntype = \"integer\"\nmin = 0\nmax = 1\nmean = { min = 0 }\n\
            std = { max = 1 }\ncompleteness = 0.9\nallowed = [1]\ndistinct = 1\nunique = true\n\
            drift = { method = \"psi\", max = 0.1 }\n";
        let r = csv(checks, "x,y\n");
        let rows = named(&r, "rows");
        assert_eq!(rows.status, CheckStatus::Fail);
        assert_eq!(rows.detail, "row count 0 is below 1");
        assert_eq!(named(&r, "x.mean").detail, "no numeric value to measure");
        assert_eq!(named(&r, "x.present").status, CheckStatus::Pass);

        let empty = crate::dataset::read_jsonl("").unwrap();
        let r = results(checks, &empty);
        assert_eq!(named(&r, "rows").detail, "row count 0 is below 1");
        assert_eq!(
            named(&r, "x.present").detail,
            "column `x` is missing; the dataset has no columns"
        );
        assert_eq!(
            crate::dataset::read_csv("").unwrap_err(),
            "the file is empty: a CSV dataset starts with a header line"
        );
    }
}
