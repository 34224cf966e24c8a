//! `kind = "deploy"`: a staged model rollout with gates, as written in the DAG file.
//!
//! The gate language is small on purpose: `<expression> <op> <expression>`, where an expression
//! adds, subtracts and multiplies numbers and metric names. It is parsed here, when the DAG is
//! validated, so a typo in a gate is reported before a model is half rolled out.

use std::ops::Range;
use std::time::Duration;

use serde_json::{Value, json};

use vane_dag::config::{
    DeValue, Field, Spanned, TaskChecker, Ty, field, found, integer, is_ident, suggestion,
    with_default,
};
use vane_dag::{KindParser, Template, parse_duration};

/// Keys only a `kind = "deploy"` task may set.
const KEYS: &[Field] = &[
    field(
        "model",
        Ty::Str,
        "Registry name of the model a `deploy` task rolls out (an artifact name): `vane models NAME` lists its versions and stages. Required for `deploy`.",
    ),
    field(
        "candidate",
        Ty::Template,
        "Path of the model file or folder a `deploy` task rolls out; its content hash is its version (a version of the artifact named by `model`). Required for `deploy`.",
    ),
    field(
        "fallback",
        Ty::Template,
        "Model file or folder that a rollback puts back when the model has no earlier production version.",
    ),
    field(
        "eval_data",
        Ty::Template,
        "File or folder `evaluate` measures on; its content hash is recorded with the evaluation metrics, and `production.x` in a gate only compares numbers measured on the same hash.",
    ),
    field(
        "evaluate",
        Ty::Template,
        "Shell command that writes evaluation metrics (`name value` lines) to `$VANE_METRICS` for the model at `$VANE_MODEL_PATH` on `$VANE_EVAL_DATA`. Run for the candidate, and for the production version when it has no metrics on this eval data yet.",
    ),
    field(
        "rollback",
        Ty::Template,
        "Shell command that puts the model at `$VANE_MODEL_PATH` back in place; run after a failed gate or a rejection (with the previous production version, or `fallback`), and by `vane rollback`.",
    ),
    with_default(
        field(
            "on_no_baseline",
            Ty::Enum(&["pass", "fail", "approve"]),
            "What a gate naming `production.x` does when the model has no production version yet: `pass` skips that gate, `fail` fails it, `approve` waits for `vane approve`.",
        ),
        "pass",
    ),
    field(
        "stages",
        Ty::Custom {
            name: "table of stage name = { command, soak, monitor, gate, min_samples, approval }",
            schema: stages_schema,
        },
        "Rollout stages in file order; the last must be `production`. Each has `command` (required: puts `$VANE_MODEL_PATH` in place for the stage), `soak` (a duration to wait before the gate), `monitor` (a command writing metrics after the soak), `gate` (a list of conditions such as `\"accuracy >= production.accuracy - 0.01\"`), `min_samples` (below this `samples` metric the gate is inconclusive and waits for a person) and `approval` (`true`: wait for `vane approve` even when the gate passes).",
    ),
];

const STAGE_KEYS: &[&str] = &[
    "command",
    "soak",
    "monitor",
    "gate",
    "min_samples",
    "approval",
];

fn stages_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": {
            "type": "object",
            "additionalProperties": false,
            "required": ["command"],
            "properties": {
                "command": { "type": "string" },
                "soak": { "type": "string" },
                "monitor": { "type": "string" },
                "gate": { "type": "array", "items": { "type": "string" } },
                "min_samples": { "type": "integer", "minimum": 0 },
                "approval": { "type": "boolean" },
            }
        }
    })
}

/// How a `deploy` task rolls a model out.
#[derive(Debug, Clone)]
pub struct DeploySpec {
    /// Registry name: the artifact name of the model's versions.
    pub model: String,
    pub candidate: Template,
    pub fallback: Option<Template>,
    pub eval_data: Option<Template>,
    pub evaluate: Option<Template>,
    pub rollback: Option<Template>,
    /// `pass`, `fail` or `approve`.
    pub on_no_baseline: String,
    /// In file order; the last is `production`.
    pub stages: Vec<Stage>,
}

/// One rollout stage.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    pub command: Template,
    pub soak: Duration,
    pub monitor: Option<Template>,
    pub gates: Vec<Gate>,
    pub min_samples: Option<u64>,
    pub approval: bool,
}

/// One gate condition: `left op right`.
#[derive(Debug, Clone)]
pub struct Gate {
    /// As written.
    pub text: String,
    pub left: Expr,
    /// `>=`, `>`, `<=`, `<`, `==` or `!=`.
    pub op: &'static str,
    pub right: Expr,
}

/// An arithmetic expression over numbers and metrics.
#[derive(Debug, Clone)]
pub enum Expr {
    Number(f64),
    /// `name`, or `production.name` (`production` = true).
    Metric {
        production: bool,
        name: String,
    },
    Binary(Box<Expr>, char, Box<Expr>),
}

/// What a gate saw: the value of each side, and whether the condition held.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateValues {
    pub left: f64,
    pub right: f64,
    pub passed: bool,
}

impl Expr {
    /// The value, or the first metric `lookup` does not know (as written, e.g. `production.x`).
    ///
    /// # Errors
    /// The name of a missing metric.
    pub fn eval(&self, lookup: &mut dyn FnMut(bool, &str) -> Option<f64>) -> Result<f64, String> {
        match self {
            Expr::Number(n) => Ok(*n),
            Expr::Metric { production, name } => lookup(*production, name).ok_or_else(|| {
                if *production {
                    format!("production.{name}")
                } else {
                    name.clone()
                }
            }),
            Expr::Binary(a, op, b) => {
                let (a, b) = (a.eval(lookup)?, b.eval(lookup)?);
                Ok(match op {
                    '+' => a + b,
                    '-' => a - b,
                    _ => a * b,
                })
            }
        }
    }

    /// Whether it names a metric of the production version.
    pub fn uses_production(&self) -> bool {
        match self {
            Expr::Number(_) => false,
            Expr::Metric { production, .. } => *production,
            Expr::Binary(a, _, b) => a.uses_production() || b.uses_production(),
        }
    }

    /// Whether it is a number or a single metric, whose value needs no `= result`.
    pub fn is_simple(&self) -> bool {
        !matches!(self, Expr::Binary(..))
    }
}

impl std::fmt::Display for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expr::Number(n) => write!(f, "{n}"),
            Expr::Metric {
                production: true,
                name,
            } => write!(f, "production.{name}"),
            Expr::Metric { name, .. } => write!(f, "{name}"),
            Expr::Binary(a, op, b) => write!(f, "{a} {op} {b}"),
        }
    }
}

impl Gate {
    /// Evaluates both sides with `lookup(production, name)`.
    ///
    /// # Errors
    /// The name of the first missing metric.
    pub fn eval(
        &self,
        lookup: &mut dyn FnMut(bool, &str) -> Option<f64>,
    ) -> Result<GateValues, String> {
        let left = self.left.eval(lookup)?;
        let right = self.right.eval(lookup)?;
        let passed = match self.op {
            ">=" => left >= right,
            ">" => left > right,
            "<=" => left <= right,
            "<" => left < right,
            "==" => left == right,
            _ => left != right,
        };
        Ok(GateValues {
            left,
            right,
            passed,
        })
    }

    pub fn uses_production(&self) -> bool {
        self.left.uses_production() || self.right.uses_production()
    }

    /// The operator that held instead, for saying why a gate failed (`0.71 < 0.84`).
    pub fn negated_op(&self) -> &'static str {
        match self.op {
            ">=" => "<",
            ">" => "<=",
            "<=" => ">",
            "<" => ">=",
            "==" => "!=",
            _ => "==",
        }
    }
}

const OPS: &[&str] = &[">=", ">", "<=", "<", "==", "!="];

/// A gate syntax error: message, byte range inside the gate text, hint.
type GateError = (String, Range<usize>, String);

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Name(String),
    Op(&'static str),
    Arith(char),
    Open,
    Close,
}

fn tokens(text: &str) -> Result<Vec<(Tok, Range<usize>)>, GateError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            while i < bytes.len()
                && (bytes[i].is_ascii_digit()
                    || bytes[i] == b'.'
                    || bytes[i] == b'_'
                    || ((bytes[i] == b'e' || bytes[i] == b'E') && i > start))
            {
                // An exponent may be signed (`1e-3`, `2.5E+2`); elsewhere `-` is subtraction.
                if matches!(bytes[i], b'e' | b'E')
                    && matches!(bytes.get(i + 1), Some(b'+' | b'-'))
                    && bytes.get(i + 2).is_some_and(u8::is_ascii_digit)
                {
                    i += 1;
                }
                i += 1;
            }
            let word = &text[start..i];
            let n: f64 = word.replace('_', "").parse().map_err(|_| {
                (
                    format!("`{word}` is not a number"),
                    start..i,
                    "write a number such as 0.01 or 50".to_owned(),
                )
            })?;
            out.push((Tok::Num(n), start..i));
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'.')
            {
                i += 1;
            }
            out.push((Tok::Name(text[start..i].to_owned()), start..i));
            continue;
        }
        if "<>=!".contains(c) {
            while i < bytes.len() && "<>=!".contains(bytes[i] as char) {
                i += 1;
            }
            let word = &text[start..i];
            let Some(op) = OPS.iter().find(|o| **o == word) else {
                return Err((
                    format!("unknown operator `{word}`"),
                    start..i,
                    format!(
                        "compare with one of {}",
                        OPS.iter()
                            .map(|o| format!("`{o}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            };
            out.push((Tok::Op(op), start..i));
            continue;
        }
        let tok = match c {
            '+' | '-' | '*' => Tok::Arith(c),
            '(' => Tok::Open,
            ')' => Tok::Close,
            _ => {
                let len = text[start..].chars().next().map_or(1, char::len_utf8);
                return Err((
                    format!("unexpected `{}` in a gate", &text[start..start + len]),
                    start..start + len,
                    "a gate compares metrics and numbers: `accuracy >= production.accuracy - 0.01`; arithmetic is `+`, `-`, `*`".to_owned(),
                ));
            }
        };
        i += 1;
        out.push((tok, start..i));
    }
    Ok(out)
}

/// How deeply parentheses and signs may nest in one gate: far more than a gate needs, and
/// few enough that a malformed gate cannot exhaust the stack of the parser's recursion.
const MAX_NESTING: usize = 32;

struct GateParser {
    toks: Vec<(Tok, Range<usize>)>,
    at: usize,
    len: usize,
    depth: usize,
}

impl GateParser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|(t, _)| t)
    }

    fn span(&self) -> Range<usize> {
        self.toks
            .get(self.at)
            .map_or(self.len..self.len, |(_, s)| s.clone())
    }

    fn expr(&mut self) -> Result<Expr, GateError> {
        let mut left = self.term()?;
        while let Some(Tok::Arith(op @ ('+' | '-'))) = self.peek() {
            let op = *op;
            self.at += 1;
            let right = self.term()?;
            left = Expr::Binary(Box::new(left), op, Box::new(right));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Expr, GateError> {
        let mut left = self.factor()?;
        while let Some(Tok::Arith('*')) = self.peek() {
            self.at += 1;
            let right = self.factor()?;
            left = Expr::Binary(Box::new(left), '*', Box::new(right));
        }
        Ok(left)
    }

    fn factor(&mut self) -> Result<Expr, GateError> {
        let span = self.span();
        let tok = self.peek().cloned();
        self.at += 1;
        let nests = matches!(tok, Some(Tok::Open | Tok::Arith('-')));
        if nests {
            if self.depth == MAX_NESTING {
                return Err((
                    format!("a gate nests parentheses or signs more than {MAX_NESTING} deep"),
                    span,
                    "write the arithmetic flatter".into(),
                ));
            }
            self.depth += 1;
        }
        let out = self.factor_inner(tok, span);
        if nests {
            self.depth -= 1;
        }
        out
    }

    fn factor_inner(&mut self, tok: Option<Tok>, span: Range<usize>) -> Result<Expr, GateError> {
        match tok {
            Some(Tok::Num(n)) => Ok(Expr::Number(n)),
            Some(Tok::Arith('-')) => {
                let inner = self.factor()?;
                Ok(Expr::Binary(
                    Box::new(Expr::Number(0.0)),
                    '-',
                    Box::new(inner),
                ))
            }
            Some(Tok::Name(name)) => metric(&name, span),
            Some(Tok::Open) => {
                let inner = self.expr()?;
                if self.peek() != Some(&Tok::Close) {
                    return Err((
                        "unclosed `(` in a gate".into(),
                        self.span(),
                        "add `)`".into(),
                    ));
                }
                self.at += 1;
                Ok(inner)
            }
            None => Err((
                "the gate ends where a number or metric name was expected".into(),
                span,
                "complete the comparison, e.g. `accuracy >= 0.9`".into(),
            )),
            Some(_) => Err((
                "expected a number or a metric name here".into(),
                span,
                "a side of a gate is a number, a metric (`accuracy`, `production.accuracy`) or arithmetic of those".into(),
            )),
        }
    }
}

fn metric(name: &str, span: Range<usize>) -> Result<Expr, GateError> {
    let (production, bare) = match name.strip_prefix("production.") {
        Some(rest) => (true, rest),
        None => (false, name),
    };
    if bare.is_empty() || bare.ends_with('.') || name == "production" {
        return Err((
            format!("`{name}` is not a metric name"),
            span,
            "write `production.<metric>` for the production version's metric, or `<metric>` for the candidate's".into(),
        ));
    }
    Ok(Expr::Metric {
        production,
        name: bare.to_owned(),
    })
}

/// Parses one gate; errors carry byte ranges inside `text`.
fn parse_gate(text: &str) -> Result<Gate, GateError> {
    let toks = tokens(text)?;
    let ops: Vec<usize> = toks
        .iter()
        .enumerate()
        .filter(|(_, (t, _))| matches!(t, Tok::Op(_)))
        .map(|(i, _)| i)
        .collect();
    let whole = 0..text.len();
    let (at, op) = match ops.as_slice() {
        [] => {
            return Err((
                "a gate must compare two sides".into(),
                whole,
                "write e.g. `accuracy >= production.accuracy - 0.01` (operators: >=, >, <=, <, ==, !=)".into(),
            ));
        }
        [one] => (*one, toks[*one].clone()),
        [_, second, ..] => {
            return Err((
                "a gate holds one comparison".into(),
                toks[*second].1.clone(),
                "write each condition as its own gate: gate = [\"a >= 1\", \"a < 5\"]".into(),
            ));
        }
    };
    let Tok::Op(op_str) = op.0 else {
        unreachable!("filtered to operators")
    };
    let side = |range: Range<usize>, toks: &[(Tok, Range<usize>)]| -> Result<Expr, GateError> {
        let mut p = GateParser {
            toks: toks[range.clone()].to_vec(),
            at: 0,
            depth: 0,
            len: if range.end < toks.len() {
                toks[range.end].1.start
            } else {
                text.len()
            },
        };
        let e = p.expr()?;
        if p.at < p.toks.len() {
            // `50ms`, `2%`: a number with a unit written against it.
            let unit = match (p.at.checked_sub(1).map(|i| &p.toks[i]), &p.toks[p.at]) {
                (Some((Tok::Num(_), before)), (Tok::Name(unit), after))
                    if before.end == after.start =>
                {
                    Some(unit.clone())
                }
                _ => None,
            };
            let hint = match unit {
                Some(unit) => format!(
                    "gates compare plain numbers: drop `{unit}`, and report the metric in the unit the number is in"
                ),
                None => "join terms with `+`, `-` or `*`".into(),
            };
            return Err((
                "unexpected text after the expression".into(),
                p.span(),
                hint,
            ));
        }
        Ok(e)
    };
    let left = side(0..at, &toks)?;
    let right = side(at + 1..toks.len(), &toks)?;
    Ok(Gate {
        text: text.to_owned(),
        left,
        op: op_str,
        right,
    })
}

/// Reads the deploy keys of task `task_id`; `None` after reporting what is wrong.
fn parse(
    sub: &mut TaskChecker<'_, '_>,
    task_id: &str,
    task: &Spanned<DeValue<'_>>,
) -> Option<DeploySpec> {
    let DeValue::Table(table) = task.get_ref() else {
        return None;
    };
    let mut ok = true;
    let model = match table.get("model").map(|v| (v, v.get_ref())) {
        Some((v, DeValue::String(name))) => {
            if !is_ident(name) {
                sub.error(
                    format!("`{name}` is not a valid model name"),
                    v.span(),
                    "use letters, digits, `_`, `-`, `.`: it names the model in the registry",
                );
                ok = false;
            }
            Some(name.to_string())
        }
        None => {
            sub.error(
                format!("deploy task `{task_id}` has no `model`"),
                task.span(),
                "add `model = \"churn\"`: the registry name of the model being rolled out",
            );
            None
        }
        // Its type was reported by the key check.
        Some(_) => None,
    };
    // A missing key is one problem among those of the task: the rest are still checked, so
    // that fixing it does not reveal the next.
    let candidate = match table.get("candidate") {
        Some(candidate) => sub.template(candidate, "`candidate`"),
        None => {
            sub.error(
                format!("deploy task `{task_id}` has no `candidate`"),
                task.span(),
                "add `candidate = \"path/to/model\"`: the model to roll out",
            );
            None
        }
    };
    let mut optional = |key: &str| -> Result<Option<Template>, ()> {
        match table.get(key) {
            None => Ok(None),
            Some(v) => sub.template(v, &format!("`{key}`")).map(Some).ok_or(()),
        }
    };
    let fallback = optional("fallback");
    let eval_data = optional("eval_data");
    let evaluate = optional("evaluate");
    let rollback = optional("rollback");
    let on_no_baseline = match table.get("on_no_baseline").map(|v| v.get_ref()) {
        Some(DeValue::String(s)) => s.to_string(),
        _ => "pass".to_owned(),
    };
    let stages = stages(sub, task_id, task, table.get("stages"));
    let (
        Some(model),
        Some(candidate),
        Ok(fallback),
        Ok(eval_data),
        Ok(evaluate),
        Ok(rollback),
        Some(stages),
        true,
    ) = (
        model, candidate, fallback, eval_data, evaluate, rollback, stages, ok,
    )
    else {
        return None;
    };
    if evaluate.is_none()
        && let Some(v) = table.get("eval_data")
    {
        sub.warning(
            format!("`eval_data` of task `{task_id}` is unused without `evaluate`"),
            v.span(),
            "add `evaluate = \"...\"`, the command that measures a model on it, or remove `eval_data`",
        );
    }
    Some(DeploySpec {
        model,
        candidate,
        fallback,
        eval_data,
        evaluate,
        rollback,
        on_no_baseline,
        stages,
    })
}

fn stages(
    sub: &mut TaskChecker<'_, '_>,
    task_id: &str,
    task: &Spanned<DeValue<'_>>,
    value: Option<&Spanned<DeValue<'_>>>,
) -> Option<Vec<Stage>> {
    let Some(value) = value else {
        sub.error(
            format!("deploy task `{task_id}` has no `stages`"),
            task.span(),
            format!(
                "add at least [tasks.{task_id}.stages.production] with `command = \"...\"`, the command that puts the model in production"
            ),
        );
        return None;
    };
    let DeValue::Table(table) = value.get_ref() else {
        sub.error(
            format!(
                "`stages` must be a table of stages, found {}",
                found(value.get_ref())
            ),
            value.span(),
            format!("write [tasks.{task_id}.stages.canary] and [tasks.{task_id}.stages.production] tables"),
        );
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (name, stage) in table.iter() {
        match one_stage(sub, task_id, name.get_ref(), stage) {
            Some(s) => out.push(s),
            None => ok = false,
        }
    }
    let last = table.iter().next_back();
    match last {
        None => {
            sub.error(
                format!("deploy task `{task_id}` has no stages"),
                value.span(),
                format!("add [tasks.{task_id}.stages.production] with `command = \"...\"`"),
            );
            return None;
        }
        Some((name, _)) if name.get_ref() != "production" => {
            let has_production = table.iter().any(|(n, _)| n.get_ref() == "production");
            sub.error(
                format!(
                    "the last stage of deploy task `{task_id}` is `{}`, not `production`",
                    name.get_ref()
                ),
                name.span(),
                if has_production {
                    "stages run in file order: move the `production` stage to the end".to_owned()
                } else {
                    format!(
                        "add [tasks.{task_id}.stages.production] after the other stages: a rollout ends in production"
                    )
                },
            );
            return None;
        }
        Some(_) => {}
    }
    ok.then_some(out)
}

fn one_stage(
    sub: &mut TaskChecker<'_, '_>,
    task_id: &str,
    name: &str,
    value: &Spanned<DeValue<'_>>,
) -> Option<Stage> {
    let DeValue::Table(table) = value.get_ref() else {
        sub.error(
            format!(
                "stage `{name}` of task `{task_id}` must be a table, found {}",
                found(value.get_ref())
            ),
            value.span(),
            format!("write [tasks.{task_id}.stages.{name}] with `command = \"...\"`"),
        );
        return None;
    };
    let mut ok = true;
    if !is_ident(name) || name == "archived" || name == "failed" || name == "registered" {
        sub.error(
            format!("`{name}` cannot name a stage"),
            value.span(),
            "use letters, digits, `_`, `-`; `registered`, `archived` and `failed` are taken by the registry",
        );
        ok = false;
    }
    for (key, v) in table.iter() {
        if !STAGE_KEYS.contains(&key.get_ref().as_ref()) {
            sub.error(
                format!("unknown key `{}` in stage `{name}`", key.get_ref()),
                key.span(),
                suggestion(key.get_ref(), STAGE_KEYS.iter().copied()),
            );
            let _ = v;
            ok = false;
        }
    }
    let command = match table.get("command") {
        Some(v) => sub.template(v, "`command`"),
        None => {
            sub.error(
                format!("stage `{name}` of task `{task_id}` has no `command`"),
                value.span(),
                "add `command = \"...\"`: the shell command that puts $VANE_MODEL_PATH in place for this stage",
            );
            None
        }
    };
    let monitor = match table.get("monitor") {
        Some(v) => match sub.template(v, "`monitor`") {
            Some(t) => Some(t),
            None => {
                ok = false;
                None
            }
        },
        None => None,
    };
    let soak = match table.get("soak").map(|v| (v, v.get_ref())) {
        None => Duration::ZERO,
        Some((_, DeValue::String(s))) if parse_duration(s).is_ok() => {
            parse_duration(s).unwrap_or_default()
        }
        Some((v, DeValue::String(s))) => {
            let problem = parse_duration(s).err().unwrap_or_default();
            sub.error(
                format!("invalid duration `{s}` for `soak`: {problem}"),
                v.span(),
                "write a number and a unit: 500ms, 30s, 5m, 1h",
            );
            ok = false;
            Duration::ZERO
        }
        Some((v, other)) => {
            sub.error(
                format!("`soak` must be a duration string, found {}", found(other)),
                v.span(),
                "write soak = \"30s\"",
            );
            ok = false;
            Duration::ZERO
        }
    };
    let min_samples = match table.get("min_samples").map(|v| (v, v.get_ref())) {
        None => None,
        Some((_, DeValue::Integer(i))) if integer(i).is_some_and(|n| n >= 0) => {
            integer(i).map(|n| n as u64)
        }
        Some((v, other)) => {
            sub.error(
                format!(
                    "`min_samples` must be a whole number of 0 or more, found {}",
                    found(other)
                ),
                v.span(),
                "write e.g. min_samples = 200: below this `samples` metric the gate waits for a person",
            );
            ok = false;
            None
        }
    };
    let approval = match table.get("approval").map(|v| (v, v.get_ref())) {
        None => false,
        Some((_, DeValue::Boolean(b))) => *b,
        Some((v, other)) => {
            sub.error(
                format!("`approval` must be true or false, found {}", found(other)),
                v.span(),
                "write approval = true to wait for `vane approve` after the gate passes",
            );
            ok = false;
            false
        }
    };
    let mut gates = Vec::new();
    match table.get("gate").map(|v| (v, v.get_ref())) {
        None => {}
        Some((_, DeValue::Array(items))) => {
            for item in items {
                match item.get_ref() {
                    DeValue::String(text) => match parse_gate(text) {
                        Ok(g) => gates.push(g),
                        Err((message, range, hint)) => {
                            let inner = sub.checker().inner_span(&item.span(), text, range);
                            let (start, end) = (inner.start, inner.end);
                            let span = if start == end {
                                start..(end + 1).min(item.span().end)
                            } else {
                                start..end
                            };
                            sub.error(format!("in gate `{text}`: {message}"), span, hint);
                            ok = false;
                        }
                    },
                    other => {
                        sub.error(
                            format!("a gate must be a string, found {}", found(other)),
                            item.span(),
                            "write gate = [\"accuracy >= 0.9\"]",
                        );
                        ok = false;
                    }
                }
            }
        }
        Some((v, other)) => {
            sub.error(
                format!(
                    "`gate` must be a list of conditions, found {}",
                    found(other)
                ),
                v.span(),
                "write gate = [\"accuracy >= production.accuracy - 0.01\"]",
            );
            ok = false;
        }
    }
    let command = command?;
    ok.then(|| Stage {
        name: name.to_owned(),
        command,
        soak,
        monitor,
        gates,
        min_samples,
        approval,
    })
}

/// `kind = "deploy"`, for [`vane_dag::Registry::kind`] in the programs that run DAGs.
pub static DEPLOY: KindParser<DeploySpec> = KindParser::new("deploy", KEYS, parse);

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str, metrics: &[(&str, f64)]) -> Result<GateValues, String> {
        let g = parse_gate(text).expect("parses");
        g.eval(&mut |prod, name| {
            let key = if prod {
                format!("production.{name}")
            } else {
                name.to_owned()
            };
            metrics.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
        })
    }

    #[test]
    fn gates_compare_arithmetic_of_metrics() {
        let m = [("accuracy", 0.71), ("production.accuracy", 0.85)];
        let v = values("accuracy >= production.accuracy - 0.01", &m).unwrap();
        assert!(!v.passed);
        assert!((v.right - 0.84).abs() < 1e-9);
        assert!(values("accuracy * 2 > 1.4", &m).unwrap().passed);
        assert!(
            values("(accuracy + 0.2) * 1 >= production.accuracy", &m)
                .unwrap()
                .passed
        );
        assert_eq!(values("latency < 50", &m), Err("latency".to_owned()));
    }

    #[test]
    fn gates_read_numbers_with_exponents() {
        let m = [("error", 0.0005), ("qps", 300.0)];
        assert!(values("error < 1e-3", &m).unwrap().passed);
        assert!(values("qps > 2.5E+2", &m).unwrap().passed);
        assert!((values("qps - 1e2 > 0", &m).unwrap().left - 200.0).abs() < 1e-9);
        assert!(values("qps-1 > 0", &m).unwrap().passed);
    }

    #[test]
    fn deeply_nested_gates_are_refused_not_overflowed() {
        let deep = format!("{}1{} > 0", "(".repeat(100_000), ")".repeat(100_000));
        let err = parse_gate(&deep).unwrap_err();
        assert!(err.0.contains("more than 32 deep"), "{err:?}");
        let signs = format!("{}1 > 0", "-".repeat(100_000));
        assert!(parse_gate(&signs).unwrap_err().0.contains("deep"));
        let ok = format!("{}1{} > 0", "(".repeat(32), ")".repeat(32));
        assert!(parse_gate(&ok).is_ok());
    }

    #[test]
    fn gate_errors_point_at_the_problem() {
        let (msg, range, _) = parse_gate("accuracy => 0.9").unwrap_err();
        assert_eq!(msg, "unknown operator `=>`");
        assert_eq!(range, 9..11);
        let (msg, _, _) = parse_gate("accuracy").unwrap_err();
        assert!(msg.contains("compare"), "{msg}");
        let (_, range, hint) = parse_gate("a >= b c").unwrap_err();
        assert_eq!(range, 7..8);
        assert!(hint.contains("join terms"), "{hint}");
        // A unit on a number: the hint says to drop it, not to join terms.
        let (_, range, hint) = parse_gate("p95_latency < 50ms").unwrap_err();
        assert_eq!(range, 16..18);
        assert!(hint.contains("drop `ms`"), "{hint}");
    }
}
