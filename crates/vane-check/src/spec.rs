//! `kind = "validate"`: the declarative data checks of a task, as written in the DAG file.

use serde_json::{Value, json};

use vane_dag::config::{
    DeTable, DeValue, Field, Spanned, TaskChecker, Ty, field, found, integer, number, suggestion,
    type_name, with_default,
};
use vane_dag::{KindParser, Template};

/// Keys only a `kind = "validate"` task may set.
const KEYS: &[Field] = &[
    field(
        "dataset",
        Ty::Template,
        "Path of the file a `validate` task checks: CSV (`.csv`) or JSON Lines (`.jsonl`, `.ndjson`). Parquet is not read.",
    ),
    with_default(
        field(
            "format",
            Ty::Enum(&["csv", "jsonl"]),
            "How to read `dataset`, when its extension does not say.",
        ),
        "from the extension",
    ),
    with_default(
        field(
            "severity",
            Ty::Enum(&["error", "warn"]),
            "What a failed check of this task does unless it says otherwise: `error` fails the task (downstream tasks do not run), `warn` reports it and lets the run go on.",
        ),
        "error",
    ),
    field(
        "rows",
        Ty::Custom {
            name: "row-count bound",
            schema: bound_schema,
        },
        "Number of rows: exact (`rows = 1000`), a range (`{ min = 500, max = 5000 }`), or learned from earlier good runs (`\"auto\"` or `{ auto = true, k = 3, window = 30, warmup = 10 }`).",
    ),
    field(
        "columns",
        Ty::Custom {
            name: "table of column name = checks",
            schema: columns_schema,
        },
        "Checks of each column: `[tasks.validate.columns.age]` with `type`, `min`, `max`, `completeness`, `allowed`, `distinct`, `unique`, `mean`, `std`, `drift`. A listed column must exist. Any check may be a table with its own `severity`, e.g. `min = { value = 0, severity = \"warn\" }`.",
    ),
    field(
        "agreement",
        Ty::Custom {
            name: "labeling agreement check",
            schema: agreement_schema,
        },
        "Agreement of annotators over items labeled by two or more: `{ item = \"id\", annotator = \"annotator\", label = \"label\", method = \"kappa\", min = 0.6 }`; `kappa` is Cohen's kappa over annotator pairs, `percent` the share (0–100) of pairs that agree.",
    ),
];

/// What a `validate` task checks.
#[derive(Debug, Clone)]
pub struct ValidateSpec {
    pub dataset: Template,
    /// `None`: from the dataset's extension.
    pub format: Option<Format>,
    /// In file order: `rows`, then each column's, then `agreement`.
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckSeverity {
    Error,
    Warn,
}

impl CheckSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckSeverity::Error => "error",
            CheckSeverity::Warn => "warn",
        }
    }
}

/// One check: what it measures and the bound it holds the measure to.
#[derive(Debug, Clone)]
pub struct Check {
    /// `rows`, `<column>.<check>` or `agreement`.
    pub name: String,
    pub column: Option<String>,
    pub severity: CheckSeverity,
    pub kind: CheckKind,
}

impl Check {
    /// The check's definition as text that changes exactly when the check is edited: its
    /// hash names the series whose history `auto` bounds learn from.
    pub fn canonical(&self) -> String {
        format!(
            "{}|{}|{}",
            self.name,
            self.severity.as_str(),
            self.kind.canonical()
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Integer,
    Float,
    Number,
    String,
    Bool,
}

impl ColumnType {
    pub const NAMES: &[&str] = &["integer", "float", "number", "string", "bool"];

    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Integer => "integer",
            ColumnType::Float => "float",
            ColumnType::Number => "number",
            ColumnType::String => "string",
            ColumnType::Bool => "bool",
        }
    }
}

/// A bound on a measured number.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    Fixed { min: Option<f64>, max: Option<f64> },
    Auto(AutoRule),
}

/// `auto`: mean ± k·std of the same check's values in the last `window` good runs, once
/// there are `warmup` of them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutoRule {
    pub k: f64,
    pub window: u32,
    pub warmup: u32,
}

impl Default for AutoRule {
    fn default() -> Self {
        AutoRule {
            k: 3.0,
            window: 30,
            warmup: 10,
        }
    }
}

impl Bound {
    fn canonical(&self) -> String {
        match self {
            Bound::Fixed { min, max } => format!("fixed:{min:?}:{max:?}"),
            Bound::Auto(a) => format!("auto:k={}:window={}:warmup={}", a.k, a.window, a.warmup),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriftMethod {
    Psi,
    Js,
}

impl DriftMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftMethod::Psi => "psi",
            DriftMethod::Js => "js",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgreementMethod {
    Kappa,
    Percent,
}

/// A value `allowed` lists: its text, and its number when the DAG wrote a number, so that
/// `allowed = [1.0]` accepts a `1` or `1.0` in the data while `allowed = ["1"]` compares text.
#[derive(Debug, Clone, PartialEq)]
pub struct AllowedValue {
    /// A string as written; a number or boolean as it prints (`1.0` prints `1`).
    pub text: String,
    /// The value when the DAG wrote a number (not a string).
    pub number: Option<f64>,
}

impl AllowedValue {
    /// Whether a data value (its text, and its number when it is one) is this value:
    /// numerically when both are numbers, else by text.
    pub fn matches(&self, text: &str, number: Option<f64>) -> bool {
        match (self.number, number) {
            (Some(a), Some(b)) => a == b,
            _ => self.text == text,
        }
    }
}

#[derive(Debug, Clone)]
pub enum CheckKind {
    Rows(Bound),
    /// The column exists; implied by listing it.
    Present,
    Type(ColumnType),
    Min(f64),
    Max(f64),
    /// Non-null fraction; a fixed bound has only `min`.
    Completeness(Bound),
    Allowed(Vec<AllowedValue>),
    Distinct(Bound),
    Unique,
    Mean(Bound),
    Std(Bound),
    Drift {
        method: DriftMethod,
        max: f64,
    },
    Agreement {
        item: String,
        annotator: String,
        label: String,
        method: AgreementMethod,
        min: f64,
    },
}

impl CheckKind {
    /// The bound a check learns, when it is `auto`.
    pub fn auto(&self) -> Option<AutoRule> {
        match self {
            CheckKind::Rows(Bound::Auto(a))
            | CheckKind::Completeness(Bound::Auto(a))
            | CheckKind::Distinct(Bound::Auto(a))
            | CheckKind::Mean(Bound::Auto(a))
            | CheckKind::Std(Bound::Auto(a)) => Some(*a),
            _ => None,
        }
    }

    fn canonical(&self) -> String {
        match self {
            CheckKind::Rows(b)
            | CheckKind::Completeness(b)
            | CheckKind::Distinct(b)
            | CheckKind::Mean(b)
            | CheckKind::Std(b) => b.canonical(),
            CheckKind::Present => "present".into(),
            CheckKind::Type(t) => t.as_str().into(),
            CheckKind::Min(v) | CheckKind::Max(v) => format!("{v:?}"),
            CheckKind::Allowed(values) => {
                // The texts alone, as before numbers were kept: definitions keep their hash.
                let texts: Vec<&str> = values.iter().map(|v| v.text.as_str()).collect();
                serde_json::to_string(&texts).unwrap_or_else(|_| texts.join(","))
            }
            CheckKind::Unique => "unique".into(),
            CheckKind::Drift { method, max } => format!("{}:{max:?}", method.as_str()),
            CheckKind::Agreement {
                item,
                annotator,
                label,
                method,
                min,
            } => {
                serde_json::to_string(&json!([item, annotator, label, format!("{method:?}"), min]))
                    .unwrap_or_default()
            }
        }
    }
}

const COLUMN_KEYS: &[&str] = &[
    "type",
    "min",
    "max",
    "completeness",
    "allowed",
    "distinct",
    "unique",
    "mean",
    "std",
    "drift",
];

fn bound_schema() -> Value {
    json!({
        "oneOf": [
            { "type": "number" },
            { "const": "auto" },
            {
                "type": "object",
                "properties": {
                    "min": { "type": "number" },
                    "max": { "type": "number" },
                    "value": { "type": "number" },
                    "auto": { "type": "boolean" },
                    "k": { "type": "number", "exclusiveMinimum": 0 },
                    "window": { "type": "integer", "minimum": 2 },
                    "warmup": { "type": "integer", "minimum": 2 },
                    "severity": { "enum": ["error", "warn"] }
                },
                "additionalProperties": false
            }
        ]
    })
}

fn with_severity(value: Value) -> Value {
    json!({
        "oneOf": [
            value.clone(),
            {
                "type": "object",
                "properties": {
                    "value": value,
                    "severity": { "enum": ["error", "warn"] }
                },
                "required": ["value"],
                "additionalProperties": false
            }
        ]
    })
}

fn columns_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": {
            "type": "object",
            "properties": {
                "type": with_severity(json!({ "enum": ColumnType::NAMES })),
                "min": with_severity(json!({ "type": "number" })),
                "max": with_severity(json!({ "type": "number" })),
                "completeness": bound_schema(),
                "allowed": with_severity(json!({ "type": "array", "items": { "type": ["string", "number", "boolean"] } })),
                "distinct": bound_schema(),
                "unique": with_severity(json!({ "type": "boolean" })),
                "mean": bound_schema(),
                "std": bound_schema(),
                "drift": {
                    "type": "object",
                    "properties": {
                        "method": { "enum": ["psi", "js"] },
                        "max": { "type": "number", "minimum": 0 },
                        "severity": { "enum": ["error", "warn"] }
                    },
                    "required": ["max"],
                    "additionalProperties": false
                }
            },
            "additionalProperties": false
        }
    })
}

fn agreement_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "item": { "type": "string" },
            "annotator": { "type": "string" },
            "label": { "type": "string" },
            "method": { "enum": ["kappa", "percent"] },
            "min": { "type": "number" },
            "severity": { "enum": ["error", "warn"] }
        },
        "required": ["item", "annotator", "label", "min"],
        "additionalProperties": false
    })
}

/// Reads the validate keys of task `task_id`; `None` after reporting what is wrong.
fn parse(
    sub: &mut TaskChecker<'_, '_>,
    task_id: &str,
    task: &Spanned<DeValue<'_>>,
) -> Option<ValidateSpec> {
    let DeValue::Table(table) = task.get_ref() else {
        return None;
    };
    let Some(dataset) = table.get("dataset") else {
        // `data = ...` is reported as an unknown key whose hint names `dataset`: one mistake,
        // one error.
        let misspelt = table.iter().any(|(key, _)| {
            key.get_ref().as_ref() != "dataset"
                && vane_dag::did_you_mean(key.get_ref(), ["dataset"]).is_some()
        });
        if misspelt {
            return None;
        }
        sub.error(
            format!("validate task `{task_id}` has no `dataset`"),
            task.span(),
            "add `dataset = \"path/to/file.csv\"`: the file to check",
        );
        return None;
    };
    let written = dataset;
    let dataset = sub.template(dataset, "`dataset`");
    // The generic key check reported a wrong `format` or `severity` already.
    let format = match table.get("format").map(|v| v.get_ref()) {
        Some(DeValue::String(s)) if s == "csv" => Some(Format::Csv),
        Some(DeValue::String(s)) if s == "jsonl" => Some(Format::Jsonl),
        _ => None,
    };
    // The run would fail reading a file whose format it cannot tell: say so now, when the
    // extension is written out (not made by a template).
    if let (DeValue::String(path), None, None) = (written.get_ref(), format, table.get("format"))
        && let Err(why) = crate::dataset::format_of(std::path::Path::new(path.as_ref()), None)
        && std::path::Path::new(path.as_ref())
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| !e.contains("}}"))
    {
        sub.error(
            why,
            written.span(),
            "vane reads CSV (`.csv`) and JSON Lines (`.jsonl`, `.ndjson`) only",
        );
    }
    let severity = match table.get("severity").map(|v| v.get_ref()) {
        Some(DeValue::String(s)) if s == "warn" => CheckSeverity::Warn,
        _ => CheckSeverity::Error,
    };
    let mut p = Parser {
        sub,
        severity,
        ok: true,
        checks: Vec::new(),
    };
    if let Some(rows) = table.get("rows") {
        p.bound_check(rows, "rows", None, BoundUse::Count);
    }
    if let Some(columns) = table.get("columns") {
        p.columns(columns);
    }
    if let Some(agreement) = table.get("agreement") {
        p.agreement(agreement);
    }
    if p.checks.is_empty() && p.ok {
        p.sub.warning(
            format!("validate task `{task_id}` checks nothing"),
            task.span(),
            "add `rows = { min = 1 }` or a `[tasks.<id>.columns.<name>]` table",
        );
    }
    let Parser { ok, checks, .. } = p;
    Some(ValidateSpec {
        dataset: dataset?,
        format,
        checks,
    })
    .filter(|_| ok)
}

/// How a bound is read: `Count` accepts an exact number; `Fraction` reads a number as the
/// least share; `Range` wants a table or `auto`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BoundUse {
    Count,
    Fraction,
    Range,
}

struct Parser<'a, 'c, 's> {
    sub: &'a mut TaskChecker<'c, 's>,
    severity: CheckSeverity,
    ok: bool,
    checks: Vec<Check>,
}

impl Parser<'_, '_, '_> {
    fn error(
        &mut self,
        message: impl Into<String>,
        span: std::ops::Range<usize>,
        hint: impl Into<String>,
    ) {
        self.ok = false;
        self.sub.error(message, span, hint);
    }

    fn push(
        &mut self,
        name: String,
        column: Option<&str>,
        severity: CheckSeverity,
        kind: CheckKind,
    ) {
        self.checks.push(Check {
            name,
            column: column.map(str::to_owned),
            severity,
            kind,
        });
    }

    fn severity_of(&mut self, table: &DeTable<'_>, label: &str) -> Option<CheckSeverity> {
        let Some(value) = table.get("severity") else {
            return Some(self.severity);
        };
        match value.get_ref() {
            DeValue::String(s) if s == "error" => Some(CheckSeverity::Error),
            DeValue::String(s) if s == "warn" => Some(CheckSeverity::Warn),
            other => {
                let shown = match other {
                    DeValue::String(s) => format!("`{s}`"),
                    other => type_name(other).to_owned(),
                };
                self.error(
                    format!("`severity` of {label} must be \"error\" or \"warn\", found {shown}"),
                    value.span(),
                    "`error` fails the task, `warn` only reports",
                );
                None
            }
        }
    }

    /// Reports keys of a check table outside `allowed`.
    fn known_keys(&mut self, table: &DeTable<'_>, allowed: &[&str], label: &str) -> bool {
        let mut ok = true;
        for (key, _) in table.iter() {
            if !allowed.contains(&key.get_ref().as_ref()) {
                self.error(
                    format!("{label} has no key `{}`", key.get_ref()),
                    key.span(),
                    suggestion(key.get_ref(), allowed.iter().copied()),
                );
                ok = false;
            }
        }
        ok
    }

    /// A check written as a plain value or as `{ value = ..., severity = ... }`.
    fn plain<'v, 'de>(
        &mut self,
        value: &'v Spanned<DeValue<'de>>,
        label: &str,
    ) -> Option<(&'v Spanned<DeValue<'de>>, CheckSeverity)> {
        if let DeValue::Table(t) = value.get_ref() {
            if !self.known_keys(t, &["value", "severity"], label) {
                return None;
            }
            let severity = self.severity_of(t, label)?;
            let Some(inner) = t.get("value") else {
                self.error(
                    format!("{label} written as a table has no `value`"),
                    value.span(),
                    "write `{ value = ..., severity = \"warn\" }`",
                );
                return None;
            };
            Some((inner, severity))
        } else {
            Some((value, self.severity))
        }
    }

    fn number_of(&mut self, value: &Spanned<DeValue<'_>>, label: &str) -> Option<f64> {
        let n = number(value.get_ref());
        if n.is_none() {
            self.error(
                format!("{label} must be a number, found {}", found(value.get_ref())),
                value.span(),
                "write a number such as `0` or `0.5`",
            );
        }
        n
    }

    fn bound_check(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        name: &str,
        column: Option<&str>,
        how: BoundUse,
    ) {
        let label = format!("`{name}`");
        let auto_hint = "write `\"auto\"` to learn the bound from earlier good runs";
        let (bound, severity) = match value.get_ref() {
            DeValue::String(s) if s == "auto" => (Bound::Auto(AutoRule::default()), self.severity),
            DeValue::String(s) => {
                let want = if how == BoundUse::Range {
                    "a table or \"auto\""
                } else {
                    "a number, a table or \"auto\""
                };
                self.error(
                    format!("{label} must be {want}, found `{s}`"),
                    value.span(),
                    auto_hint,
                );
                return;
            }
            DeValue::Integer(_) | DeValue::Float(_) if how != BoundUse::Range => {
                let n = number(value.get_ref()).unwrap_or(0.0);
                // A share outside [0, 1] or a negative count passes always or never.
                let impossible = match how {
                    BoundUse::Fraction => !(0.0..=1.0).contains(&n),
                    _ => n < 0.0,
                };
                if impossible {
                    let (what, hint) = if how == BoundUse::Fraction {
                        (
                            "a share of values, from 0 to 1",
                            format!(
                                "write e.g. {} = 0.99 for 99 %",
                                name.rsplit('.').next().unwrap_or(name)
                            ),
                        )
                    } else {
                        (
                            "a count, 0 or more",
                            format!(
                                "write e.g. {} = 100",
                                name.rsplit('.').next().unwrap_or(name)
                            ),
                        )
                    };
                    self.error(format!("{label} is {what}, found {n}"), value.span(), hint);
                    return;
                }
                let bound = if how == BoundUse::Count {
                    Bound::Fixed {
                        min: Some(n),
                        max: Some(n),
                    }
                } else {
                    Bound::Fixed {
                        min: Some(n),
                        max: None,
                    }
                };
                (bound, self.severity)
            }
            DeValue::Table(t) => {
                let mut keys = vec!["min", "max", "auto", "k", "window", "warmup", "severity"];
                if how == BoundUse::Fraction {
                    keys.push("value");
                }
                if !self.known_keys(t, &keys, &label) {
                    return;
                }
                let Some(severity) = self.severity_of(t, &label) else {
                    return;
                };
                match self.table_bound(t, value, &label, how) {
                    Some(b) => (b, severity),
                    None => return,
                }
            }
            other => {
                let want = if how == BoundUse::Range {
                    "a table `{ min = ..., max = ... }` or \"auto\""
                } else {
                    "a number, a table `{ min = ..., max = ... }` or \"auto\""
                };
                self.error(
                    format!("{label} must be {want}, found {}", found(other)),
                    value.span(),
                    auto_hint,
                );
                return;
            }
        };
        let kind = match name.rsplit('.').next() {
            Some("rows") => CheckKind::Rows(bound),
            Some("completeness") => CheckKind::Completeness(bound),
            Some("distinct") => CheckKind::Distinct(bound),
            Some("mean") => CheckKind::Mean(bound),
            _ => CheckKind::Std(bound),
        };
        self.push(name.to_owned(), column, severity, kind);
    }

    fn table_bound(
        &mut self,
        t: &DeTable<'_>,
        whole: &Spanned<DeValue<'_>>,
        label: &str,
        how: BoundUse,
    ) -> Option<Bound> {
        let auto = match t.get("auto").map(|v| (v.get_ref(), v.span())) {
            Some((DeValue::Boolean(b), _)) => *b,
            Some((other, span)) => {
                self.error(
                    format!(
                        "`auto` of {label} must be true or false, found {}",
                        found(other)
                    ),
                    span,
                    "write `auto = true`",
                );
                return None;
            }
            None => false,
        };
        if auto {
            let mut rule = AutoRule::default();
            // Every wrong key of the table is said, not only the first: one round of fixes.
            let mut wrong = false;
            if let Some(v) = t.get("k") {
                match self.number_of(v, &format!("`k` of {label}")) {
                    Some(k) if k > 0.0 => rule.k = k,
                    Some(k) => {
                        self.error(
                            format!("`k` of {label} must be above 0, found {k}"),
                            v.span(),
                            "the bound is mean ± k × std; 3 is usual",
                        );
                        wrong = true;
                    }
                    None => wrong = true,
                }
            }
            for (key, slot) in [("window", &mut rule.window), ("warmup", &mut rule.warmup)] {
                let Some(v) = t.get(key) else {
                    continue;
                };
                match v.get_ref() {
                    DeValue::Integer(i) => match integer(i) {
                        Some(n @ 2..=10_000) => *slot = n as u32,
                        _ => {
                            self.error(
                                format!(
                                    "`{key}` of {label} must be between 2 and 10000, found {}",
                                    found(v.get_ref())
                                ),
                                v.span(),
                                "a standard deviation needs at least 2 values",
                            );
                            wrong = true;
                        }
                    },
                    other => {
                        self.error(
                            format!(
                                "`{key}` of {label} must be an integer, found {}",
                                found(other)
                            ),
                            v.span(),
                            "write a count of runs such as `10`",
                        );
                        wrong = true;
                    }
                }
            }
            if !wrong && rule.warmup > rule.window {
                self.error(
                    format!(
                        "`warmup` of {label} ({}) is larger than its `window` ({}): it would never leave learning",
                        rule.warmup, rule.window
                    ),
                    whole.span(),
                    "make `window` at least `warmup`",
                );
                wrong = true;
            }
            for key in ["min", "max", "value"] {
                if let Some(v) = t.get(key) {
                    self.error(
                        format!("{label} is `auto` and also sets `{key}`"),
                        v.span(),
                        "keep either the learned bound (`auto = true`) or fixed `min`/`max`",
                    );
                    wrong = true;
                }
            }
            return (!wrong).then_some(Bound::Auto(rule));
        }
        let mut wrong = false;
        for key in ["k", "window", "warmup"] {
            if let Some(v) = t.get(key) {
                self.error(
                    format!("`{key}` of {label} only applies to a learned bound"),
                    v.span(),
                    "add `auto = true`, or remove it",
                );
                wrong = true;
            }
        }
        let mut number = |key: &str| {
            let v = t.get(key)?;
            let n = self.number_of(v, &format!("`{key}` of {label}"));
            wrong |= n.is_none();
            n
        };
        let min = number("value").or(number("min"));
        let max = number("max");
        if wrong {
            return None;
        }
        if min.is_none() && max.is_none() {
            let hint = if how == BoundUse::Fraction {
                "write `{ min = 0.99 }`, or `auto = true`"
            } else {
                "write `{ min = ..., max = ... }`, or `auto = true`"
            };
            self.error(format!("{label} sets no bound"), whole.span(), hint);
            return None;
        }
        if let (Some(lo), Some(hi)) = (min, max)
            && lo > hi
        {
            self.error(
                format!("{label} has `min` {lo} above `max` {hi}: no value can pass"),
                whole.span(),
                "swap them",
            );
            return None;
        }
        Some(Bound::Fixed { min, max })
    }

    fn columns(&mut self, value: &Spanned<DeValue<'_>>) {
        let DeValue::Table(columns) = value.get_ref() else {
            self.error(
                format!(
                    "`columns` must be a table of column checks, found {}",
                    found(value.get_ref())
                ),
                value.span(),
                "write `[tasks.<id>.columns.<column name>]` tables",
            );
            return;
        };
        for (key, checks) in columns.iter() {
            let column: &str = key.get_ref();
            let DeValue::Table(table) = checks.get_ref() else {
                self.error(
                    format!(
                        "checks of column `{column}` must be a table, found {}",
                        found(checks.get_ref())
                    ),
                    checks.span(),
                    "write `[tasks.<id>.columns.<column name>]` with keys such as `type`, `min`",
                );
                continue;
            };
            self.known_keys(table, COLUMN_KEYS, &format!("column `{column}`"));
            self.push(
                format!("{column}.present"),
                Some(column),
                self.severity,
                CheckKind::Present,
            );
            for (check_key, v) in table.iter() {
                let check: &str = check_key.get_ref();
                let name = format!("{column}.{check}");
                self.column_check(column, check, &name, v);
            }
            self.range_that_admits_something(column, table);
        }
    }

    /// A column's `min` above its `max` fails every row, whatever the data: a typo, not a check.
    fn range_that_admits_something(&mut self, column: &str, table: &DeTable<'_>) {
        let of_column = |kind: fn(&CheckKind) -> Option<f64>| {
            self.checks
                .iter()
                .filter(|c| c.column.as_deref() == Some(column))
                .find_map(|c| kind(&c.kind))
        };
        let min = of_column(|k| match k {
            CheckKind::Min(n) => Some(*n),
            _ => None,
        });
        let max = of_column(|k| match k {
            CheckKind::Max(n) => Some(*n),
            _ => None,
        });
        if let (Some(min), Some(max), Some(at)) = (min, max, table.get("max"))
            && min > max
        {
            self.error(
                format!(
                    "column `{column}` has `min = {min}` above `max = {max}`: no value can pass"
                ),
                at.span(),
                "swap them, or fix the one that is wrong",
            );
        }
    }

    fn column_check(&mut self, column: &str, check: &str, name: &str, v: &Spanned<DeValue<'_>>) {
        let label = format!("`{name}`");
        match check {
            "completeness" => self.bound_check(v, name, Some(column), BoundUse::Fraction),
            "distinct" => self.bound_check(v, name, Some(column), BoundUse::Count),
            "mean" | "std" => self.bound_check(v, name, Some(column), BoundUse::Range),
            "drift" => self.drift(v, name, column),
            "type" | "min" | "max" | "allowed" | "unique" => {
                let Some((inner, severity)) = self.plain(v, &label) else {
                    return;
                };
                let kind = match check {
                    "type" => match inner.get_ref() {
                        DeValue::String(s) => {
                            let t = match s.as_ref() {
                                "integer" => ColumnType::Integer,
                                "float" => ColumnType::Float,
                                "number" => ColumnType::Number,
                                "string" => ColumnType::String,
                                "bool" => ColumnType::Bool,
                                other => {
                                    self.error(
                                        format!("{label} has no type `{other}`"),
                                        inner.span(),
                                        suggestion(other, ColumnType::NAMES.iter().copied()),
                                    );
                                    return;
                                }
                            };
                            CheckKind::Type(t)
                        }
                        other => {
                            self.error(
                                format!("{label} must be a string, found {}", found(other)),
                                inner.span(),
                                "one of: integer, float, number, string, bool",
                            );
                            return;
                        }
                    },
                    "min" | "max" => {
                        let Some(n) = self.number_of(inner, &label) else {
                            return;
                        };
                        if check == "min" {
                            CheckKind::Min(n)
                        } else {
                            CheckKind::Max(n)
                        }
                    }
                    "unique" => match inner.get_ref() {
                        DeValue::Boolean(true) => CheckKind::Unique,
                        DeValue::Boolean(false) => return,
                        other => {
                            self.error(
                                format!("{label} must be true or false, found {}", found(other)),
                                inner.span(),
                                "write `unique = true`",
                            );
                            return;
                        }
                    },
                    _ => match self.allowed(inner, &label) {
                        Some(values) => CheckKind::Allowed(values),
                        None => return,
                    },
                };
                self.push(name.to_owned(), Some(column), severity, kind);
            }
            // Reported by `known_keys`.
            _ => {}
        }
    }

    fn allowed(&mut self, value: &Spanned<DeValue<'_>>, label: &str) -> Option<Vec<AllowedValue>> {
        let DeValue::Array(items) = value.get_ref() else {
            self.error(
                format!(
                    "{label} must be a list of values, found {}",
                    found(value.get_ref())
                ),
                value.span(),
                "write `allowed = [\"basic\", \"pro\"]`",
            );
            return None;
        };
        let mut values = Vec::new();
        for item in items.iter() {
            let text = |text: String| AllowedValue { text, number: None };
            match item.get_ref() {
                DeValue::String(s) => values.push(text(s.to_string())),
                DeValue::Boolean(b) => values.push(text(b.to_string())),
                DeValue::Integer(i) => {
                    let i = integer(i)?;
                    values.push(AllowedValue {
                        text: i.to_string(),
                        number: Some(i as f64),
                    });
                }
                DeValue::Float(_) => {
                    let n = number(item.get_ref())?;
                    values.push(AllowedValue {
                        text: n.to_string(),
                        number: Some(n),
                    });
                }
                other => {
                    self.error(
                        format!(
                            "{label} lists {}; values must be strings, numbers or booleans",
                            type_name(other)
                        ),
                        item.span(),
                        "compare values as they are written in the dataset",
                    );
                    return None;
                }
            }
        }
        if values.is_empty() {
            self.error(
                format!("{label} is empty: no value could pass"),
                value.span(),
                "list the values the column may hold",
            );
            return None;
        }
        Some(values)
    }

    fn drift(&mut self, v: &Spanned<DeValue<'_>>, name: &str, column: &str) {
        let label = format!("`{name}`");
        let DeValue::Table(t) = v.get_ref() else {
            self.error(
                format!("{label} must be a table, found {}", found(v.get_ref())),
                v.span(),
                "write `drift = { method = \"psi\", max = 0.2 }`",
            );
            return;
        };
        if !self.known_keys(t, &["method", "max", "severity"], &label) {
            return;
        }
        let Some(severity) = self.severity_of(t, &label) else {
            return;
        };
        let method = match t.get("method") {
            None => DriftMethod::Psi,
            Some(m) => match m.get_ref() {
                DeValue::String(s) if s == "psi" => DriftMethod::Psi,
                DeValue::String(s) if s == "js" => DriftMethod::Js,
                other => {
                    let shown = match other {
                        DeValue::String(s) => format!("`{s}`"),
                        other => type_name(other).to_owned(),
                    };
                    self.error(
                        format!("`method` of {label} must be \"psi\" or \"js\", found {shown}"),
                        m.span(),
                        "`psi`: population stability index; `js`: Jensen–Shannon distance",
                    );
                    return;
                }
            },
        };
        let Some(max) = t.get("max") else {
            self.error(
                format!("{label} has no `max`"),
                v.span(),
                "add `max = 0.2`: the largest drift that passes",
            );
            return;
        };
        let Some(max) = self.number_of(max, &format!("`max` of {label}")) else {
            return;
        };
        self.push(
            name.to_owned(),
            Some(column),
            severity,
            CheckKind::Drift { method, max },
        );
    }

    fn agreement(&mut self, v: &Spanned<DeValue<'_>>) {
        let label = "`agreement`";
        let DeValue::Table(t) = v.get_ref() else {
            self.error(
                format!(
                    "{label} must be a table, found {}",
                    found(v.get_ref())
                ),
                v.span(),
                "write `agreement = { item = \"id\", annotator = \"annotator\", label = \"label\", min = 0.6 }`",
            );
            return;
        };
        if !self.known_keys(
            t,
            &["item", "annotator", "label", "method", "min", "severity"],
            label,
        ) {
            return;
        }
        let Some(severity) = self.severity_of(t, label) else {
            return;
        };
        let mut names = Vec::new();
        for key in ["item", "annotator", "label"] {
            match t.get(key).map(|x| (x.get_ref(), x.span())) {
                Some((DeValue::String(s), _)) => names.push(s.to_string()),
                Some((other, span)) => {
                    self.error(
                        format!(
                            "`{key}` of {label} must be a column name, found {}",
                            found(other)
                        ),
                        span,
                        "put the column name in quotes",
                    );
                    return;
                }
                None => {
                    self.error(
                        format!("{label} has no `{key}` column"),
                        v.span(),
                        format!("add `{key} = \"<column name>\"`"),
                    );
                    return;
                }
            }
        }
        let method = match t.get("method").map(|m| (m.get_ref(), m.span())) {
            None => AgreementMethod::Kappa,
            Some((DeValue::String(s), _)) if s == "kappa" => AgreementMethod::Kappa,
            Some((DeValue::String(s), _)) if s == "percent" => AgreementMethod::Percent,
            Some((_, span)) => {
                self.error(
                    format!("`method` of {label} must be \"kappa\" or \"percent\""),
                    span,
                    "`kappa`: Cohen's kappa over annotator pairs; `percent`: share of pairs that agree",
                );
                return;
            }
        };
        let Some(min_value) = t.get("min") else {
            self.error(
                format!("{label} has no `min`"),
                v.span(),
                "add `min = 0.6`: the least agreement that passes",
            );
            return;
        };
        let Some(min) = self.number_of(min_value, &format!("`min` of {label}")) else {
            return;
        };
        if method == AgreementMethod::Percent && min > 0.0 && min <= 1.0 {
            self.sub.warning(
                format!("`min` of {label} is {min}, but `percent` agreement runs from 0 to 100"),
                min_value.span(),
                format!("did you mean `min = {}`?", min * 100.0),
            );
        }
        let [item, annotator, label_col]: [String; 3] = names.try_into().unwrap_or_default();
        self.push(
            "agreement".into(),
            None,
            severity,
            CheckKind::Agreement {
                item,
                annotator,
                label: label_col,
                method,
                min,
            },
        );
    }
}

/// `kind = "validate"`, for [`vane_dag::Registry::kind`] in the programs that run DAGs.
pub static VALIDATE: KindParser<ValidateSpec> = KindParser::new("validate", KEYS, parse);

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(values: &str) -> Check {
        let source = format!(
            "[tasks.v]\nkind = \"validate\"\ndataset = \"d.csv\"\n[tasks.v.columns.x]\nallowed = {values}\n"
        );
        let dag =
            vane_dag::parse_dag_with(&source, "t", &vane_dag::Registry::none().kind(&VALIDATE))
                .dag
                .expect("parses");
        let Some(spec) = dag.tasks[0]
            .builtin
            .as_ref()
            .and_then(|b| b.spec::<ValidateSpec>())
        else {
            panic!("not a validate task");
        };
        spec.checks
            .iter()
            .find(|c| c.name == "x.allowed")
            .expect("an allowed check")
            .clone()
    }

    #[test]
    fn allowed_numbers_keep_their_value_and_compare_numerically() {
        let check = allowed(r#"[1.0, 2, "3", true]"#);
        let CheckKind::Allowed(values) = &check.kind else {
            panic!("{check:?}");
        };
        let texts: Vec<&str> = values.iter().map(|v| v.text.as_str()).collect();
        assert_eq!(texts, ["1", "2", "3", "true"]);
        let numbers: Vec<Option<f64>> = values.iter().map(|v| v.number).collect();
        assert_eq!(numbers, [Some(1.0), Some(2.0), None, None]);
        assert!(values[0].matches("1.0", Some(1.0)));
        assert!(values[0].matches("1", Some(1.0)));
        assert!(!values[0].matches("1.5", Some(1.5)));
        assert!(values[1].matches("2.00", Some(2.0)));
        assert!(
            !values[2].matches("3.0", Some(3.0)),
            "a string compares as text"
        );
        assert!(values[2].matches("3", Some(3.0)));
        assert!(values[3].matches("true", None));
        // The definition (and so its series of results) is the texts, as before.
        assert!(
            check.canonical().ends_with(r#"|["1","2","3","true"]"#),
            "{}",
            check.canonical()
        );
    }
}
