//! From DAG-file text to a checked [`Dag`] or every problem in it.
//!
//! Two steps, as a compiler does: the TOML parser (with error recovery) gives a tree of spanned
//! values; one pass then checks every key against [`crate::spec`] and builds the model, collecting
//! all diagnostics instead of stopping at the first.

use std::collections::HashMap;
use std::ops::Range;
use std::str::FromStr;
use std::time::Duration;

use petgraph::graph::{DiGraph, NodeIndex};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diag::{Diagnostic, Tally, did_you_mean};
use crate::duration::parse_duration;
use crate::model::{
    ArtifactRef, Backoff, Builtin, Cadence, Catchup, Dag, Overlap, ParamValue, RetryPolicy,
    Schedule, Task, TriggerRule,
};
use crate::registry::{Registry, Sections};
use crate::spec::{self, Field, Ty};
use crate::template::Template;

pub(crate) const IDENT_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$";

pub fn is_ident(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && text.len() <= 100
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// A label name of `runs_on` (and of `vane agent --labels`): letters, digits, `_`, `-`, `.`.
fn is_label_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The result of parsing one DAG file: the DAG when it has no errors, and every diagnostic
/// (errors and warnings) either way.
#[derive(Debug)]
pub struct Parsed {
    pub dag: Option<Dag>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Parsed {
    /// Every diagnostic, compiler style, as in file `path` of text `source`.
    pub fn render(&self, path: &str, source: &str) -> String {
        self.diagnostics
            .iter()
            .map(|d| d.render(path, source))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Parses and checks one DAG file that has no built-in tasks (`validate`, `deploy`): a
/// built-in task is reported as unknown here. See [`parse_dag_with`].
pub fn parse_dag(source: &str, default_id: &str) -> Parsed {
    parse_dag_with(source, default_id, &Registry::none())
}

/// Parses and checks one DAG file. `default_id` (the file stem) is the id when `[dag] id` is
/// absent; `kinds` parse the keys of built-in tasks, reporting into the same diagnostics.
pub fn parse_dag_with(source: &str, default_id: &str, registry: &Registry) -> Parsed {
    let mut cx = Checker::new(source);
    let (root, syntax_errors) = DeTable::parse_recoverable(source);
    cx.syntax_errors(&syntax_errors);
    let dag = cx.dag(root.get_ref(), default_id, registry);
    let diagnostics = cx.finish();
    let dag = dag.filter(|_| !diagnostics.iter().any(Diagnostic::is_error));
    Parsed { dag, diagnostics }
}

/// The scheduler config file (`vane.toml`): limits shared by every run.
#[derive(Debug, Clone, Default)]
pub struct SchedulerConfig {
    /// Most tasks running at once across all runs; `None` means no global limit.
    pub max_active_tasks: Option<usize>,
    /// Named pools and how many tasks of each may run at once.
    pub pools: std::collections::BTreeMap<String, usize>,
    /// What the registered sections (`[alerts]`) read.
    pub sections: Sections,
    /// `[scheduler] lease_ttl`: how long a vane process counts as alive without renewing its
    /// lease; `None` for vane's default.
    pub lease_ttl: Option<std::time::Duration>,
    /// `[scheduler] agents`: `true` for `"all"`, where every task without `runs_on` goes to
    /// any agent, as if it had `runs_on = {}`; `false` (the default, `"local"`) runs those
    /// tasks on the scheduler's own host.
    pub agents_all: bool,
    /// `[scheduler] storage`: where shipped logs and the content store live, as a URL
    /// (`s3://…`) or an absolute folder; `None` for the state folder.
    pub storage: Option<String>,
}

/// Parses and checks a scheduler config file, with `registry` reading its sections such as
/// `[alerts]`:
///
/// ```toml
/// [scheduler]
/// max_active_tasks = 16
///
/// [pools]
/// gpu = 1
/// ```
///
/// Relative paths in it (a channel's `ca_file`) are read from the current directory; see
/// [`parse_config_in`] for a file elsewhere.
///
/// # Errors
/// Every problem, as diagnostics with spans, like a DAG file's.
pub fn parse_config(source: &str, registry: &Registry) -> Result<SchedulerConfig, Vec<Diagnostic>> {
    parse_config_in(source, std::path::Path::new(""), registry)
}

/// [`parse_config`] for a config file in folder `dir`: a relative `ca_file` is read from there,
/// so `--config` from another directory finds the same files.
///
/// # Errors
/// Every problem, as diagnostics with spans, like a DAG file's.
pub fn parse_config_in(
    source: &str,
    dir: &std::path::Path,
    registry: &Registry,
) -> Result<SchedulerConfig, Vec<Diagnostic>> {
    let mut cx = Checker::new(source);
    let (root, syntax_errors) = DeTable::parse_recoverable(source);
    cx.syntax_errors(&syntax_errors);
    let mut config = SchedulerConfig::default();
    for (key, value) in root.get_ref() {
        match key.get_ref().as_ref() {
            "scheduler" => {
                let keys = cx.table(value, &[spec::SCHEDULER], "[scheduler]");
                config.max_active_tasks = keys.int("max_active_tasks").map(|n| n as usize);
                config.agents_all = keys.str("agents") == Some("all");
                if let (Some(entry), Some(url)) = (keys.get("storage"), keys.str("storage")) {
                    let bucket = url
                        .strip_prefix("s3://")
                        .map(|rest| rest.split(['/', '?']).next().unwrap_or_default().to_owned());
                    let folder = url.strip_prefix("file://").unwrap_or(url);
                    match bucket {
                        Some(b) if b.is_empty() => cx.error(
                            "storage names no bucket",
                            entry.span.clone(),
                            "write s3://BUCKET/optional/prefix",
                        ),
                        Some(_) => config.storage = Some(url.to_owned()),
                        None if std::path::Path::new(folder).is_absolute() => {
                            config.storage = Some(url.to_owned());
                        }
                        None => cx.error(
                            "storage must be an S3 URL or an absolute folder",
                            entry.span.clone(),
                            "write s3://bucket/prefix, or a folder every host mounts at the same path, e.g. /srv/vane",
                        ),
                    }
                }
                if let Some(entry) = keys.get("lease_ttl") {
                    match keys.dur("lease_ttl") {
                        // Renewed every third of it: below 3 s one slow round trip loses it.
                        Some(ttl) if ttl < std::time::Duration::from_secs(3) => cx.error(
                            "lease_ttl must be at least 3s",
                            entry.span.clone(),
                            "a lease is renewed every third of its time to live; use 10s to 60s",
                        ),
                        ttl => config.lease_ttl = ttl,
                    }
                }
            }
            "pools" => {
                let DeValue::Table(pools) = value.get_ref() else {
                    cx.error(
                        "[pools] must be a table",
                        value.span(),
                        "write [pools] followed by `name = slots` lines, e.g. gpu = 1",
                    );
                    continue;
                };
                for (name, slots) in pools {
                    let pool = name.get_ref().as_ref();
                    match slots.get_ref() {
                        DeValue::Integer(i)
                            if integer(i).is_some_and(|n| (1..=10_000).contains(&n)) =>
                        {
                            config
                                .pools
                                .insert(pool.to_owned(), integer(i).unwrap_or(1) as usize);
                        }
                        _ => cx.error(
                            format!("pool `{pool}` must have a whole number of slots, 1 to 10000"),
                            slots.span(),
                            format!("write {pool} = 1"),
                        ),
                    }
                }
            }
            other => {
                if let Some(section) = registry.find_section(other) {
                    let read = section.parse_config(&mut cx, value, dir);
                    config.sections.insert(section.name(), read);
                    continue;
                }
                let known: Vec<&str> = ["scheduler", "pools"]
                    .into_iter()
                    .chain(registry.sections().map(|s| s.name()))
                    .collect();
                let hint = suggestion(other, known);
                cx.error(
                    format!("unknown table `{other}` in the scheduler config"),
                    key.span(),
                    hint,
                );
            }
        }
    }
    if cx.has_errors() {
        Err(cx.finish())
    } else {
        Ok(config)
    }
}

/// A checked value of one key.
pub(crate) enum Val {
    Str(String),
    Int(i64),
    Dur(Duration),
    List(Vec<(String, Range<usize>)>),
    Env(Vec<(String, String, Range<usize>)>),
    Labels(std::collections::BTreeMap<String, String>),
    Cron(Box<croner::Cron>, String),
    Tz(chrono_tz::Tz),
    Bool(bool),
    /// A wall-clock time, read in the DAG's time zone once that is known.
    Local(chrono::NaiveDateTime),
    Instant(chrono::DateTime<chrono::Utc>),
    Catchup(Catchup),
    /// Accepted as it is here; the task kind's own parser checks it.
    Custom,
}

/// Reads `2026-01-01`, `2026-01-01T02:00:00` (wall clock) or RFC 3339 with an offset.
fn parse_date_text(text: &str) -> Option<Val> {
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(Val::Instant(t.with_timezone(&chrono::Utc)));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S") {
        return Some(Val::Local(t));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(Val::Local)
}

/// A value that passed its key's checks, and where it is written.
pub struct Entry {
    val: Val,
    /// Bytes of the source the value spans.
    pub span: Range<usize>,
}

/// The keys of one table that passed their type checks; a key that was absent or wrong is
/// `None` here (and was reported when wrong).
#[derive(Default)]
pub struct Checked {
    entries: HashMap<&'static str, Entry>,
}

impl Checked {
    /// The value of key `name` with its span.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        match self.get(name)?.val {
            Val::Str(ref s) => Some(s),
            _ => None,
        }
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        match self.get(name)?.val {
            Val::Int(i) => Some(i),
            _ => None,
        }
    }

    pub fn dur(&self, name: &str) -> Option<Duration> {
        match self.get(name)?.val {
            Val::Dur(d) => Some(d),
            _ => None,
        }
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.get(name)?.val {
            Val::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// A date key resolved in `tz`; a wall-clock time that does not exist there (a
    /// daylight-saving gap) moves to the first valid time after it.
    pub fn date(&self, name: &str, tz: chrono_tz::Tz) -> Option<chrono::DateTime<chrono::Utc>> {
        match self.get(name)?.val {
            Val::Instant(t) => Some(t),
            Val::Local(local) => crate::schedule::resolve_local(local, tz),
            _ => None,
        }
    }

    /// The labels of a [`Ty::Labels`] key; `Some` of an empty map for `{}`.
    pub fn labels(&self, name: &str) -> Option<&std::collections::BTreeMap<String, String>> {
        match self.get(name)?.val {
            Val::Labels(ref labels) => Some(labels),
            _ => None,
        }
    }

    pub fn list(&self, name: &str) -> &[(String, Range<usize>)] {
        match self.get(name).map(|e| &e.val) {
            Some(Val::List(items)) => items,
            _ => &[],
        }
    }
}

/// Inputs named by artifact name (`inputs = ["raw"]`), with where each name is written.
type InputNames = Vec<(String, Range<usize>)>;

/// How many problems of one file are shown. Past it, a file is not worth reading problem by
/// problem, and each one shown costs its line and column, found from the start of the text.
pub(crate) const MOST_DIAGNOSTICS: usize = 200;

/// Checks the tables of one source text and collects every problem found in it.
pub struct Checker<'s> {
    pub(crate) source: &'s str,
    pub(crate) diags: Vec<Diagnostic>,
    /// The TOML reader reported an error: what it could not read may be missing below.
    syntax_broken: bool,
}

impl<'s> Checker<'s> {
    /// A checker of `source`, the text the spans of the values checked point into.
    pub fn new(source: &'s str) -> Self {
        Self {
            source,
            diags: Vec::new(),
            syntax_broken: false,
        }
    }

    /// The text being checked.
    pub fn source(&self) -> &'s str {
        self.source
    }

    /// Every problem reported so far, in source order: the first [`MOST_DIAGNOSTICS`], then
    /// one saying how many more there are.
    pub fn finish(mut self) -> Vec<Diagnostic> {
        self.diags
            .sort_by_key(|d| d.span.as_ref().map_or(0, |s| s.start));
        if self.diags.len() > MOST_DIAGNOSTICS {
            let more = self.diags.len() - MOST_DIAGNOSTICS;
            let errors = self.diags.iter().any(Diagnostic::is_error);
            let hidden = Tally::of(&self.diags[MOST_DIAGNOSTICS..]);
            self.diags.truncate(MOST_DIAGNOSTICS);
            let message = format!("... and {more} more problems in this file");
            let hint = "fix the ones above first; the rest are shown once there are fewer";
            self.diags.push(if errors {
                Diagnostic::error(message, None)
                    .hint(hint)
                    .in_place_of(hidden)
            } else {
                Diagnostic::warning(message, None)
                    .hint(hint)
                    .in_place_of(hidden)
            });
        }
        self.diags
    }

    /// Whether the file already has as many problems as will be shown: searching for a
    /// "did you mean" then only costs time (10,000 misspelt dependencies, each searched among
    /// 10,000 tasks, took 36 s).
    fn enough_said(&self) -> bool {
        self.diags.len() >= MOST_DIAGNOSTICS
    }

    /// Whether an error (not only a warning) was reported.
    pub fn has_errors(&self) -> bool {
        self.diags.iter().any(Diagnostic::is_error)
    }

    /// The text of a string value; anything else is reported, naming `label`, with `hint`.
    pub fn string<'v>(
        &mut self,
        value: &'v Spanned<DeValue<'_>>,
        label: &str,
        hint: &str,
    ) -> Option<&'v str> {
        match value.get_ref() {
            DeValue::String(text) => Some(text),
            other => {
                let found = type_name(other);
                self.error(
                    format!("{label} must be a string, found {found}"),
                    value.span(),
                    hint,
                );
                None
            }
        }
    }

    /// Reports a warning: something that works but is likely not what was meant.
    pub fn warning(
        &mut self,
        message: impl Into<String>,
        span: Range<usize>,
        hint: impl Into<String>,
    ) {
        self.diags
            .push(Diagnostic::warning(message, Some(span)).hint(hint));
    }

    /// A string value read as a [`Url`](crate::config::Url); anything else, or a malformed
    /// URL, is reported pointing at the mistake, naming `label`.
    pub fn url(&mut self, value: &Spanned<DeValue<'_>>, label: &str) -> Option<crate::url::Url> {
        let text = self.string(
            value,
            label,
            "write the URL in quotes: \"https://HOST/PATH\"",
        )?;
        match crate::url::Url::parse(text) {
            Ok(url) => Some(url),
            Err(e) => {
                let span = self.inner_span(&value.span(), text, e.range);
                self.error(e.message, span, e.hint);
                None
            }
        }
    }
}

/// A number written as a TOML integer or float.
pub fn number(value: &DeValue<'_>) -> Option<f64> {
    match value {
        DeValue::Integer(i) => integer(i).map(|i| i as f64),
        DeValue::Float(f) => f.as_str().replace('_', "").parse().ok(),
        _ => None,
    }
}

/// What the parser of a task kind's own keys ([`crate::TaskKind::parse`]) reports through:
/// the [`Checker`] of the DAG file, and the parameters its templates may name.
pub struct TaskChecker<'c, 's> {
    cx: &'c mut Checker<'s>,
    params: &'c [&'c str],
}

impl<'s> TaskChecker<'_, 's> {
    /// Reports an error at `span`, with what to do about it.
    pub fn error(
        &mut self,
        message: impl Into<String>,
        span: Range<usize>,
        hint: impl Into<String>,
    ) {
        self.cx.error(message, span, hint);
    }

    /// Reports a warning at `span`, with what to do about it.
    pub fn warning(
        &mut self,
        message: impl Into<String>,
        span: Range<usize>,
        hint: impl Into<String>,
    ) {
        self.cx.warning(message, span, hint);
    }

    /// The checker of the whole file, for [`Checker::table`] and [`Checker::url`].
    pub fn checker(&mut self) -> &mut Checker<'s> {
        self.cx
    }

    /// A string value read as a template; anything else is reported, naming `label`.
    pub fn template(&mut self, value: &Spanned<DeValue<'_>>, label: &str) -> Option<Template> {
        let text = self
            .cx
            .string(value, label, "put the value in quotes: \"...\"")?;
        let entry = Entry {
            val: Val::Str(text.to_string()),
            span: value.span(),
        };
        self.cx.template(&entry, self.params)
    }
}

/// What was found instead, for a message: a short value as written (`-5`, `the string "yes"`,
/// `99999999999999999999`), which says more than its type alone when the type was right but
/// the value was not; a long string, an array or a table by its type.
pub fn found(value: &DeValue<'_>) -> String {
    match value {
        DeValue::Integer(i) => i.as_str().to_owned(),
        DeValue::Float(f) => f.as_str().to_owned(),
        DeValue::Boolean(b) => b.to_string(),
        DeValue::String(s) if s.chars().count() <= 40 && !s.contains(['\n', '"']) => {
            format!("the string \"{s}\"")
        }
        other => type_name(other).to_owned(),
    }
}

pub fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// The span of the line with the most nesting marks (`.`, `[`, `{`) outside comments: where a
/// file too deep for the TOML reader is deepest.
fn deepest_line(source: &str) -> Range<usize> {
    let mut best = (0, 0..0);
    let mut at = 0;
    for line in source.split_inclusive('\n') {
        let code = line.split('#').next().unwrap_or("");
        let depth = code
            .bytes()
            .filter(|b| matches!(b, b'.' | b'[' | b'{'))
            .count();
        if depth > best.0 {
            let text = line.trim_end();
            best = (depth, at..at + text.len());
        }
        at += line.len();
    }
    best.1
}

pub fn integer(value: &toml::de::DeInteger<'_>) -> Option<i64> {
    i64::from_str_radix(&value.as_str().replace('_', ""), value.radix()).ok()
}

impl Checker<'_> {
    fn syntax_errors(&mut self, errors: &[toml::de::Error]) {
        self.syntax_broken |= !errors.is_empty();
        // After a duplicated table header, the parser also reports each of its keys as
        // duplicates; one error per duplicated table is what a person needs.
        let mut in_duplicate_table = false;
        for error in errors {
            let span = error.span();
            let line = span
                .as_ref()
                .map(|s| {
                    let start = self.source[..s.start].rfind('\n').map_or(0, |i| i + 1);
                    self.source[start..].lines().next().unwrap_or("").trim()
                })
                .unwrap_or("");
            let is_header = line.starts_with('[');
            let message = error.message().trim();
            if message == "recursion limit" && span.is_none() {
                // The reader gives this one no position: the deepest line is where to look.
                self.diags.push(
                    Diagnostic::error(
                        "nested too deeply for the TOML reader: too many levels of tables, arrays, inline tables or dotted keys",
                        Some(deepest_line(self.source)),
                    )
                    .hint("a DAG file needs a few levels ([tasks.NAME], [tasks.NAME.columns.COLUMN]); write this with fewer"),
                );
                continue;
            }
            if !message.starts_with("duplicate key") {
                self.diags.push(
                    Diagnostic::error(message, span)
                        .hint("check the TOML syntax (https://toml.io): strings need quotes, tables [brackets]"),
                );
                continue;
            }
            if !is_header && in_duplicate_table {
                continue;
            }
            in_duplicate_table = is_header;
            let key = span
                .as_ref()
                .and_then(|s| self.source.get(s.clone()))
                .unwrap_or("")
                .trim_matches('"');
            let diag = if is_header && line.starts_with("[tasks.") {
                Diagnostic::error(format!("duplicate task id `{key}`"), span)
                    .hint("task ids must be unique within a DAG; rename one of the tasks")
            } else {
                Diagnostic::error(format!("duplicate key `{key}`"), span)
                    .hint("each key may appear only once in a table; remove one")
            };
            self.diags.push(diag);
        }
    }

    /// Reports an error at `span`, with what to do about it.
    pub fn error(
        &mut self,
        message: impl Into<String>,
        span: Range<usize>,
        hint: impl Into<String>,
    ) {
        self.diags
            .push(Diagnostic::error(message, Some(span)).hint(hint));
    }

    fn dag(&mut self, root: &DeTable<'_>, default_id: &str, registry: &Registry) -> Option<Dag> {
        let mut sections: HashMap<&str, &Spanned<DeValue<'_>>> = HashMap::new();
        let mut registered = Vec::new();
        for (key, value) in root {
            let name = key.get_ref().as_ref();
            if let Some((section, _)) = spec::SECTIONS.iter().find(|(s, _)| *s == name) {
                sections.insert(section, value);
                continue;
            }
            if registry.find_section(name).is_some() {
                registered.push((name, value));
                continue;
            }
            let hint = if spec::DEFAULTS
                .iter()
                .copied()
                .flatten()
                .any(|f| f.name == name)
            {
                format!(
                    "`{name}` is a task key: put it under [tasks.ID], or under [defaults] for every task"
                )
            } else if spec::task_keys(registry).any(|f| f.name == name) {
                format!("`{name}` is a task key: put it under [tasks.ID]")
            } else if spec::DAG.iter().any(|f| f.name == name) {
                format!("`{name}` belongs under [dag]")
            } else {
                let names: Vec<&str> = spec::SECTIONS
                    .iter()
                    .map(|(s, _)| *s)
                    .chain(registry.sections().map(|s| s.name()))
                    .collect();
                suggestion(name, names)
            };
            self.error(format!("unknown top-level key `{name}`"), key.span(), hint);
        }

        let dag_keys = match sections.get("dag") {
            Some(v) => self.table(v, &[spec::DAG], "[dag]"),
            None => Checked::default(),
        };
        let defaults = match sections.get("defaults") {
            Some(v) => self.table(v, spec::DEFAULTS, "[defaults]"),
            None => Checked::default(),
        };
        let params = sections
            .get("params")
            .map(|v| self.params(v))
            .unwrap_or_default();
        let id = match dag_keys.str("id") {
            Some(id) => id.to_owned(),
            None if dag_keys.get("id").is_none() && !is_ident(default_id) => {
                self.diags.push(
                    Diagnostic::error(
                        format!("the file name `{default_id}` is not a valid DAG id"),
                        None,
                    )
                    .hint("set `id` under [dag], or rename the file using letters, digits, `_`, `-` and `.`"),
                );
                default_id.to_owned()
            }
            None => default_id.to_owned(),
        };
        let tasks = match sections.get("tasks") {
            Some(v) => self.tasks(v, &defaults, &params, registry),
            // A misspelt `[task.x]` or broken TOML syntax was reported already, and is the
            // reason no tasks were read: saying so again would hide the cause under an effect.
            None if self.syntax_broken
                || root
                    .iter()
                    .any(|(key, _)| misspells(key.get_ref(), "tasks")) =>
            {
                None
            }
            None => {
                // Pointed at where a reader starts looking: the [dag] table, or else the
                // top of the file, so an editor can jump there like for any other problem.
                let span = sections.get("dag").map_or(0..0, |v| v.span());
                self.error("the DAG has no tasks", span, NO_TASKS_HINT);
                None
            }
        };

        let timezone = match dag_keys.get("timezone").map(|e| &e.val) {
            Some(Val::Tz(tz)) => *tz,
            _ => chrono_tz::UTC,
        };
        let schedule = dag_keys.get("schedule").and_then(|e| match &e.val {
            Val::Cron(cron, expression) => Some(Schedule {
                expression: expression.clone(),
                cron: (**cron).clone(),
                timezone,
            }),
            _ => None,
        });
        if let (Some(start), Some(end)) = (
            dag_keys.date("start_date", timezone),
            dag_keys.date("end_date", timezone),
        ) && start > end
        {
            let span = dag_keys.get("end_date").map(|e| e.span.clone());
            self.diags.push(
                Diagnostic::error(
                    "`end_date` is before `start_date`: no run could ever be scheduled",
                    span,
                )
                .hint("swap them, or remove `end_date`"),
            );
        }
        let mut read = Sections::default();
        if !registered.is_empty() {
            // Names as written: a section is checked even when a task has a mistake.
            let task_ids: Vec<&str> = match sections.get("tasks").map(|t| t.get_ref()) {
                Some(DeValue::Table(t)) => t.keys().map(|k| k.get_ref().as_ref()).collect(),
                _ => Vec::new(),
            };
            for (name, value) in registered {
                if let Some(section) = registry.find_section(name) {
                    read.insert(
                        section.name(),
                        section.parse_dag(self, value, &id, &task_ids),
                    );
                }
            }
        }
        let tasks = tasks?;
        Some(Dag {
            id,
            description: dag_keys.str("description").map(str::to_owned),
            schedule,
            timezone,
            max_active_tasks: dag_keys.int("max_active_tasks").map(|n| n as usize),
            tags: dag_keys
                .list("tags")
                .iter()
                .map(|(t, _)| t.clone())
                .collect(),
            cadence: Cadence {
                start_date: dag_keys.date("start_date", timezone),
                end_date: dag_keys.date("end_date", timezone),
                max_active_runs: dag_keys.int("max_active_runs").map_or(1, |n| n as usize),
                paused: dag_keys.bool("paused").unwrap_or(false),
                catchup: match dag_keys.get("catchup").map(|e| &e.val) {
                    Some(Val::Catchup(c)) => *c,
                    _ => Catchup::Latest,
                },
                catchup_window: dag_keys.dur("catchup_window"),
                sla: dag_keys.dur("sla"),
                overlap: match dag_keys.str("overlap") {
                    Some("queue") => Overlap::Queue,
                    Some("cancel_previous") => Overlap::CancelPrevious,
                    Some("allow") => Overlap::Allow,
                    _ => Overlap::Skip,
                },
            },
            params,
            tasks,
            sections: read,
        })
    }

    fn params(&mut self, value: &Spanned<DeValue<'_>>) -> Vec<(String, ParamValue)> {
        let DeValue::Table(table) = value.get_ref() else {
            self.error(
                format!("[params] must be a table, found {}", found(value.get_ref())),
                value.span(),
                "write parameters as `[params]` followed by `name = default` lines",
            );
            return Vec::new();
        };
        let mut params = Vec::new();
        // Declared but refused: templates that use them are not told they are undeclared.
        let mut refused = Vec::new();
        for (key, value) in table {
            let name = key.get_ref().as_ref();
            if !is_name(name) {
                self.error(
                    format!("parameter name `{name}` is not usable in templates and environment variables"),
                    key.span(),
                    "use letters, digits and `_`, starting with a letter",
                );
                refused.push(name.to_owned());
                continue;
            }
            let param = match value.get_ref() {
                DeValue::String(s) => ParamValue::String(s.to_string()),
                DeValue::Integer(i) => match integer(i) {
                    Some(i) => ParamValue::Integer(i),
                    None => continue,
                },
                DeValue::Float(f) => match f.as_str().replace('_', "").parse::<f64>() {
                    Ok(f) if f.is_finite() => ParamValue::Float(f),
                    Ok(_) => {
                        // `inf`, `nan`, or a number too large for a float (`1e999`): a task
                        // would get the text "inf" or "NaN", which no training script expects.
                        self.error(
                            format!("parameter `{name}` is not a finite number"),
                            value.span(),
                            "write a finite number; for \"no limit\", use a large number or a string the task understands",
                        );
                        refused.push(name.to_owned());
                        continue;
                    }
                    Err(_) => continue,
                },
                DeValue::Boolean(b) => ParamValue::Bool(*b),
                other => {
                    self.error(
                        format!("parameter `{name}` is {}; parameters are strings, integers, floats or booleans", type_name(other)),
                        value.span(),
                        "pass structured values as a JSON string and parse them in the task",
                    );
                    refused.push(name.to_owned());
                    continue;
                }
            };
            if let Some((other, _)) = params
                .iter()
                .find(|(other, _): &&(String, ParamValue)| other.eq_ignore_ascii_case(name))
            {
                self.error(
                    format!("parameters `{other}` and `{name}` differ only in case"),
                    key.span(),
                    format!(
                        "both would reach tasks as $VANE_PARAM_{}; rename one",
                        name.to_uppercase()
                    ),
                );
                continue;
            }
            params.push((name.to_owned(), param));
        }
        // The file has an error already, so no run ever sees these stand-ins.
        for name in refused {
            if !params.iter().any(|(p, _)| *p == name) {
                params.push((name, ParamValue::String(String::new())));
            }
        }
        params
    }

    fn tasks(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        defaults: &Checked,
        params: &[(String, ParamValue)],
        registry: &Registry,
    ) -> Option<Vec<Task>> {
        let DeValue::Table(table) = value.get_ref() else {
            self.error(
                format!(
                    "`tasks` must be a table of tasks, found {}",
                    found(value.get_ref())
                ),
                value.span(),
                "write each task as a table: [tasks.train] followed by command = \"...\"",
            );
            return None;
        };
        if table.is_empty() {
            self.error("the DAG has no tasks", value.span(), NO_TASKS_HINT);
            return None;
        }
        let param_names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
        let index: HashMap<&str, usize> = table
            .keys()
            .enumerate()
            .map(|(i, k)| (k.get_ref().as_ref(), i))
            .collect();
        let ids: Vec<&str> = table.keys().map(|k| k.get_ref().as_ref()).collect();
        let mut complete = true;
        let mut tasks = Vec::with_capacity(table.len());
        // Per task: (dependency index, span of the entry naming it), to point at cycles.
        let mut edges: Vec<Vec<(usize, Range<usize>)>> = Vec::with_capacity(table.len());
        let mut input_refs = Vec::with_capacity(table.len());
        for (key, value) in table {
            let id = key.get_ref().as_ref();
            if !is_ident(id) {
                self.error(
                    format!("task id `{id}` has characters that are not allowed"),
                    key.span(),
                    "use letters, digits, `_`, `-` and `.`, starting with a letter or digit (at most 100)",
                );
            }
            let DeValue::Table(_) = value.get_ref() else {
                self.error(
                    format!(
                        "task `{id}` must be a table, found {}",
                        found(value.get_ref())
                    ),
                    value.span(),
                    format!("write it as [tasks.{id}] followed by command = \"...\""),
                );
                complete = false;
                edges.push(Vec::new());
                continue;
            };
            let kind = match value.get_ref() {
                DeValue::Table(t) => t.get("kind").and_then(|k| match k.get_ref() {
                    DeValue::String(kind) => Some(kind.as_ref()),
                    _ => None,
                }),
                _ => None,
            };
            let groups = spec::task_groups_of_kind(registry, kind);
            let keys = self.table(value, &groups, &format!("[tasks.{id}]"));
            let mut deps = Vec::new();
            for (dep, span) in keys.list("depends_on") {
                match index.get(dep.as_str()) {
                    Some(&i) => deps.push((i, span.clone())),
                    None => {
                        let others = || ids.iter().copied().filter(|t| *t != id);
                        let hint = if self.enough_said() {
                            "depend on a task of this DAG".to_owned()
                        } else if dep.contains('.') && did_you_mean(dep, others()).is_none() {
                            // `other_dag.task`, as Airflow's ExternalTaskSensor names one.
                            "`depends_on` names tasks of this DAG only; to wait for another DAG, add a task with `kind = \"sensor\"` whose command checks for what that DAG produces".to_owned()
                        } else if others().next().is_none() {
                            format!("this DAG has no other task; remove `{dep}` from `depends_on`")
                        } else {
                            suggestion(dep, others())
                        };
                        self.error(
                            format!(
                                "task `{id}` depends on `{dep}`, which is not a task of this DAG"
                            ),
                            span.clone(),
                            hint,
                        );
                    }
                }
            }
            if keys.get("poke_interval").is_some() && keys.str("kind") != Some("sensor") {
                let span = keys.get("poke_interval").map(|e| e.span.clone());
                self.diags.push(
                    Diagnostic::warning(
                        format!("`poke_interval` of task `{id}` has no effect: it is not a sensor"),
                        span,
                    )
                    .hint("add `kind = \"sensor\"`, or remove `poke_interval`"),
                );
            }
            if keys.get("trigger_rule").is_some() && keys.list("depends_on").is_empty() {
                let span = keys.get("trigger_rule").map(|e| e.span.clone());
                self.diags.push(
                    Diagnostic::warning(
                        format!(
                            "`trigger_rule` of task `{id}` has no effect: it has no dependencies"
                        ),
                        span,
                    )
                    .hint("add `depends_on`, or remove `trigger_rule`"),
                );
            }
            edges.push(deps.clone());
            match self.task(id, &keys, defaults, &param_names, value, registry) {
                Some((mut task, refs)) => {
                    task.depends_on = deps.into_iter().map(|(i, _)| i).collect();
                    tasks.push(task);
                    input_refs.push(refs);
                }
                None => {
                    complete = false;
                    input_refs.push(Vec::new());
                }
            }
        }
        self.cycles(&ids, &edges);
        if complete {
            self.resolve_inputs(&mut tasks, input_refs);
        }
        complete.then_some(tasks)
    }

    /// Turns inputs given by name (`inputs = ["raw"]`) into the path the upstream task that
    /// outputs that name declared.
    fn resolve_inputs(&mut self, tasks: &mut [Task], refs: Vec<InputNames>) {
        for (index, refs) in refs.into_iter().enumerate() {
            for (name, span) in refs {
                let producers: Vec<usize> = (0..tasks.len())
                    .filter(|&i| tasks[i].outputs.iter().any(|o| o.name == name))
                    .collect();
                let id = tasks[index].id.clone();
                let upstream = ancestors(tasks, index);
                let upstream_producers: Vec<usize> = producers
                    .iter()
                    .copied()
                    .filter(|p| upstream.contains(p))
                    .collect();
                if let [first, second, ..] = upstream_producers[..] {
                    self.error(
                        format!(
                            "task `{id}` reads `{name}`, which both `{}` and `{}` output upstream of it",
                            tasks[first].id, tasks[second].id
                        ),
                        span,
                        format!("name the path instead: inputs = {{ {name} = \"path\" }}, or give the outputs different names"),
                    );
                    continue;
                }
                let Some(&producer) = upstream_producers.first().or(producers.first()) else {
                    let outputs = tasks
                        .iter()
                        .flat_map(|t| t.outputs.iter().map(|o| o.name.as_str()));
                    let hint = match suggestion(&name, outputs) {
                        hint if hint.starts_with("did you mean") => hint,
                        _ => format!(
                            "no task declares the output `{name}`; give its path instead: inputs = {{ {name} = \"path\" }}"
                        ),
                    };
                    self.error(
                        format!("task `{id}` reads `{name}`, which no task of this DAG outputs"),
                        span,
                        hint,
                    );
                    continue;
                };
                if !upstream.contains(&producer) {
                    self.error(
                        format!(
                            "task `{id}` reads `{name}`, an output of task `{}`, but does not depend on it",
                            tasks[producer].id
                        ),
                        span,
                        format!("add `{}` to depends_on", tasks[producer].id),
                    );
                    continue;
                }
                let path = tasks[producer]
                    .outputs
                    .iter()
                    .find(|o| o.name == name)
                    .map(|o| o.path.clone());
                if let Some(path) = path {
                    tasks[index].inputs.push(ArtifactRef { name, path });
                }
            }
        }
    }

    /// `outputs = { name = "path" }`, or the same form of `inputs`; names (of `inputs = [..]`)
    /// are returned with their spans to be resolved once every task is known.
    fn artifacts(
        &mut self,
        task: &Spanned<DeValue<'_>>,
        key: &str,
        params: &[&str],
    ) -> (Vec<ArtifactRef>, InputNames) {
        let (mut refs, mut names) = (Vec::new(), Vec::new());
        let DeValue::Table(table) = task.get_ref() else {
            return (refs, names);
        };
        let Some(value) = table.get(key) else {
            return (refs, names);
        };
        match value.get_ref() {
            DeValue::Table(entries) => {
                for (name, path) in entries {
                    let name_text = name.get_ref().as_ref();
                    if !is_ident(name_text) {
                        self.error(
                            format!("artifact name `{name_text}` has characters that are not allowed"),
                            name.span(),
                            "use letters, digits, `_`, `-` and `.`, starting with a letter or digit (at most 100)",
                        );
                        continue;
                    }
                    let mut sub = TaskChecker { cx: self, params };
                    if let Some(path) = sub.template(path, &format!("the path of `{name_text}`")) {
                        refs.push(ArtifactRef {
                            name: name_text.to_owned(),
                            path,
                        });
                    }
                }
            }
            DeValue::Array(items) if key == "inputs" => {
                for item in items {
                    match item.get_ref() {
                        DeValue::String(name) if is_ident(name) => {
                            names.push((name.to_string(), item.span()));
                        }
                        other => self.error(
                            format!("`inputs` lists artifact names, found {}", found(other)),
                            item.span(),
                            "name an output of a task this one depends on, e.g. inputs = [\"raw\"]",
                        ),
                    }
                }
            }
            other => {
                let hint = if key == "inputs" {
                    "write inputs = { name = \"path\" }, or inputs = [\"name of an upstream output\"]"
                } else {
                    "write outputs = { name = \"path\" }"
                };
                self.error(
                    format!(
                        "`{key}` must be a table of name = path, found {}",
                        found(other)
                    ),
                    value.span(),
                    hint,
                );
            }
        }
        (refs, names)
    }

    fn task(
        &mut self,
        id: &str,
        keys: &Checked,
        defaults: &Checked,
        params: &[&str],
        value: &Spanned<DeValue<'_>>,
        registry: &Registry,
    ) -> Option<(Task, InputNames)> {
        let kind = keys.str("kind").unwrap_or("command");
        for registered in registry.kinds() {
            let owner = registered.name();
            if kind == owner {
                continue;
            }
            for f in registered.keys() {
                if let Some(entry) = keys.get(f.name) {
                    self.error(
                        format!(
                            "`{}` of task `{id}` applies only to tasks with kind = \"{owner}\"",
                            f.name
                        ),
                        entry.span.clone(),
                        format!("set kind = \"{owner}\", or remove `{}`", f.name),
                    );
                }
            }
        }
        let builtin_kind = spec::BUILTIN_KINDS.contains(&kind);
        let registered = registry.find_kind(kind);
        if builtin_kind && registered.is_none() {
            let span = keys.get("kind").map_or(value.span(), |e| e.span.clone());
            self.error(
                format!("task `{id}` is a `{kind}` task, which this program cannot read"),
                span,
                "run `vane validate`: the vane binary knows every task kind",
            );
            return None;
        }
        if builtin_kind && let Some(entry) = keys.get("cache") {
            self.error(
                format!("a `{kind}` task cannot be cached: task `{id}` must look at today's data every time it runs"),
                entry.span.clone(),
                "remove `cache`",
            );
            return None;
        }
        let command = match (builtin_kind, keys.get("command")) {
            (true, Some(entry)) => {
                self.error(
                    format!("task `{id}` is a `{kind}` task, which runs no `command`: vane does the work itself"),
                    entry.span.clone(),
                    "remove `command`; or make it an ordinary task by removing `kind`",
                );
                // The kind's own keys are still checked below, so that removing `command`
                // does not reveal the next problem; the error keeps the DAG from loading.
                Template::parse("", &[]).ok()?.0
            }
            (true, None) => Template::parse("", &[]).ok()?.0,
            (false, Some(entry)) => {
                if matches!(&entry.val, Val::Str(text) if text.trim().is_empty()) {
                    // `sh -c ""` succeeds: the task would pass having done nothing.
                    self.error(
                        format!("the `command` of task `{id}` is empty"),
                        entry.span.clone(),
                        "write the shell command the task runs, e.g. command = \"python3 train.py\"",
                    );
                    return None;
                }
                self.template(entry, params)?
            }
            (false, None) => {
                let written = matches!(value.get_ref(), DeValue::Table(t)
                    if t.contains_key("command") || t.iter().any(|(k, _)| misspells(k.get_ref(), "command")));
                if written {
                    // Its wrong type, or the misspelt key with a "did you mean", was reported
                    // already: a second error would point the fix at the wrong line.
                    return None;
                }
                self.error(
                    format!("[tasks.{id}] has no `command`"),
                    value.span(),
                    "add `command = \"...\"`: the shell command the task runs",
                );
                return None;
            }
        };
        let (outputs, _) = self.artifacts(value, "outputs", params);
        let (inputs, input_refs) = self.artifacts(value, "inputs", params);
        let builtin = match registered {
            Some(registered) => {
                let mut sub = TaskChecker { cx: self, params };
                let spec = registered.parse(&mut sub, id, value)?;
                let own = registered.keys();
                let identity = match value.get_ref() {
                    DeValue::Table(table) => crate::config::canonical_keys(table, |key| {
                        key == "kind" || own.iter().any(|f| f.name == key)
                    }),
                    _ => String::new(),
                };
                Some(Builtin::new(registered.name(), identity, spec))
            }
            None => None,
        };
        let pick = |name: &str| keys.get(name).or_else(|| defaults.get(name));
        let int = |name: &str| keys.int(name).or_else(|| defaults.int(name));
        let dur = |name: &str| keys.dur(name).or_else(|| defaults.dur(name));
        let backoff = match keys
            .str("retry_backoff")
            .or_else(|| defaults.str("retry_backoff"))
        {
            Some("exponential") => Backoff::Exponential,
            _ => Backoff::Fixed,
        };
        let retry = RetryPolicy {
            retries: int("retries").unwrap_or(0) as u32,
            delay: dur("retry_delay").unwrap_or(Duration::from_secs(30)),
            backoff,
            max_delay: dur("max_retry_delay").unwrap_or(Duration::from_secs(3600)),
        };
        let mut env: Vec<(String, Template)> = Vec::new();
        for source in [defaults.get("env"), keys.get("env")].into_iter().flatten() {
            let Val::Env(vars) = &source.val else {
                continue;
            };
            for (name, value, span) in vars {
                let entry = Entry {
                    val: Val::Str(value.clone()),
                    span: span.clone(),
                };
                let Some(template) = self.template(&entry, params) else {
                    continue;
                };
                env.retain(|(n, _)| n != name);
                env.push((name.clone(), template));
            }
        }
        let cwd = match pick("cwd") {
            Some(entry) => Some(self.template(entry, params)?),
            None => None,
        };
        Some((
            Task {
                id: id.to_owned(),
                description: keys.str("description").map(str::to_owned),
                command,
                depends_on: Vec::new(),
                trigger_rule: TriggerRule::from_name(
                    keys.str("trigger_rule").unwrap_or("all_success"),
                ),
                pool: keys.str("pool").map(str::to_owned),
                priority: keys.int("priority").unwrap_or(0),
                sensor: (keys.str("kind") == Some("sensor"))
                    .then(|| keys.dur("poke_interval").unwrap_or(Duration::from_secs(30))),
                retry,
                timeout: dur("timeout"),
                sla: keys.dur("sla"),
                env,
                cwd,
                inputs,
                outputs,
                cache: keys.bool("cache").unwrap_or(false),
                runs_on: keys
                    .labels("runs_on")
                    .or_else(|| defaults.labels("runs_on"))
                    .cloned(),
                builtin,
            },
            input_refs,
        ))
    }

    fn template(&mut self, entry: &Entry, params: &[&str]) -> Option<Template> {
        let Val::Str(text) = &entry.val else {
            return None;
        };
        let (template, problems, raw_uses) = match Template::parse(text, params) {
            Ok((template, raw_uses)) => (Some(template), Vec::new(), raw_uses),
            Err((problems, raw_uses)) => (None, problems, raw_uses),
        };
        for range in raw_uses {
            let span = self.inner_span(&entry.span, text, range);
            self.diags.push(
                Diagnostic::warning(
                    "raw substitution: this value is inserted into the shell command unquoted",
                    Some(span),
                )
                .hint("a value with spaces, `;` or `$(...)` becomes shell syntax; drop `| raw` unless the value is trusted"),
            );
        }
        for range in crate::template::jinja_statements(text) {
            let span = self.inner_span(&entry.span, text, range);
            self.diags.push(
                Diagnostic::warning(
                    "a Jinja statement: vane's templates have none, so the shell gets this text as written",
                    Some(span),
                )
                .hint("decide in the command itself (`if [ \"$VANE_PARAM_X\" = y ]; then ...; fi`), or pass a param"),
            );
        }
        for problem in problems {
            let span = self.inner_span(&entry.span, text, problem.range);
            self.error(problem.message, span, problem.hint);
        }
        template
    }

    /// The source bytes of `range`, a range of bytes of `content`, the value of the string
    /// written at `value_span`: what a problem found inside a string's value points at. When
    /// the literal does not read as `content`, the whole string is pointed at.
    pub fn inner_span(
        &self,
        value_span: &Range<usize>,
        content: &str,
        range: Range<usize>,
    ) -> Range<usize> {
        let raw = self.source.get(value_span.clone()).unwrap_or("");
        match crate::literal::content_span(raw, content, range) {
            Some(inner) => value_span.start + inner.start..value_span.start + inner.end,
            None => value_span.clone(),
        }
    }

    fn cycles(&mut self, ids: &[&str], edges: &[Vec<(usize, Range<usize>)>]) {
        let mut graph = DiGraph::<usize, ()>::with_capacity(ids.len(), ids.len());
        let nodes: Vec<NodeIndex> = (0..ids.len()).map(|i| graph.add_node(i)).collect();
        for (task, deps) in edges.iter().enumerate() {
            for (dep, _) in deps {
                graph.add_edge(nodes[task], nodes[*dep], ());
            }
        }
        // Kosaraju's walk is iterative in petgraph; Tarjan's recurses once per task of a
        // cycle, and a cycle of 100,000 tasks overflowed the stack. Components are reported
        // in the order of their first task.
        let mut components = petgraph::algo::kosaraju_scc(&graph);
        components.sort_by_key(|c| c.iter().map(|n| graph[*n]).min());
        for component in components {
            let members: Vec<usize> = component.iter().map(|n| graph[*n]).collect();
            let Some(&start) = members.iter().min() else {
                continue;
            };
            let self_loop = edges[start].iter().any(|(d, _)| *d == start);
            if members.len() == 1 && !self_loop {
                continue;
            }
            let path = cycle_path(start, &members, edges);
            let named = |walk: &[usize]| {
                walk.iter()
                    .map(|&i| format!("`{}`", ids[i]))
                    .collect::<Vec<_>>()
                    .join(" -> ")
            };
            // The walk ends on the task it starts from.
            let length = path.len() - 1;
            let next = path.get(1).copied().unwrap_or(start);
            let span = edges[start]
                .iter()
                .find(|(d, _)| *d == next)
                .map(|(_, s)| s.clone())
                .unwrap_or(0..0);
            if length == 1 {
                // No chain to break: the one entry to remove is the task's own name.
                self.error(
                    format!("task `{}` depends on itself", ids[start]),
                    span,
                    format!(
                        "a task cannot wait for itself to finish; remove \"{}\" from its `depends_on`",
                        ids[start]
                    ),
                );
                continue;
            }
            let message = if length <= CYCLE_TASKS_NAMED {
                format!("dependency cycle: {}", named(&path))
            } else {
                format!(
                    "dependency cycle: {} -> … and {} more, back to `{}`",
                    named(&path[..CYCLE_TASKS_NAMED]),
                    grouped(length - CYCLE_TASKS_NAMED),
                    ids[start]
                )
            };
            self.error(
                message,
                span,
                "each task in the chain depends on the next, so none can start; remove one of these dependencies",
            );
        }
    }

    /// Checks every key of a table against its spec: unknown keys (with the closest known
    /// one), types, bounds and required keys; `label` names the table in messages
    /// (`[alerts.oncall]`).
    pub fn table(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        groups: &[&'static [Field]],
        label: &str,
    ) -> Checked {
        let mut checked = Checked::default();
        let DeValue::Table(table) = value.get_ref() else {
            self.error(
                format!("{label} must be a table, found {}", found(value.get_ref())),
                value.span(),
                format!("write it as {label} on its own line, followed by `key = value` lines"),
            );
            return checked;
        };
        let fields = || groups.iter().copied().flatten();
        for (key, value) in table {
            let name = key.get_ref().as_ref();
            let Some(field) = fields().find(|f| f.name == name) else {
                let hint = suggestion(name, fields().map(|f| f.name));
                self.error(format!("unknown key `{name}` in {label}"), key.span(), hint);
                continue;
            };
            if let Some(val) = self.value(field, value, label) {
                checked.entries.insert(
                    field.name,
                    Entry {
                        val,
                        span: value.span(),
                    },
                );
            }
        }
        for field in fields().filter(|f| f.required) {
            if !checked.entries.contains_key(field.name) && !table.contains_key(field.name) {
                self.error(
                    format!("{label} has no `{}`", field.name),
                    value.span(),
                    format!("add `{} = ...`: {}", field.name, first_sentence(field.doc)),
                );
            }
        }
        checked
    }

    fn value(&mut self, field: &Field, value: &Spanned<DeValue<'_>>, label: &str) -> Option<Val> {
        let name = field.name;
        let span = value.span();
        let wrong = |cx: &mut Self, expected: &str, hint: String| {
            cx.error(
                format!(
                    "`{name}` in {label} must be {expected}, found {}",
                    found(value.get_ref())
                ),
                span.clone(),
                hint,
            );
            None
        };
        match (field.ty, value.get_ref()) {
            (Ty::Str | Ty::Template, DeValue::String(s)) => Some(Val::Str(s.to_string())),
            (Ty::Str | Ty::Template, _) => wrong(
                self,
                "a string",
                format!("put the value in quotes: {name} = \"...\""),
            ),
            (Ty::Ident, DeValue::String(s)) => {
                if is_ident(s) {
                    Some(Val::Str(s.to_string()))
                } else {
                    self.error(
                        format!("`{s}` is not a valid id"),
                        span,
                        "use letters, digits, `_`, `-` and `.`, starting with a letter or digit (at most 100)",
                    );
                    None
                }
            }
            (Ty::Ident, _) => wrong(self, "a string", format!("write {name} = \"my_id\"")),
            (Ty::StrList | Ty::IdList, DeValue::Array(items)) => {
                let mut out: Vec<(String, Range<usize>)> = Vec::new();
                // A set, not a scan of `out`: one task with 100,000 upstream tasks took 11 s.
                let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
                for item in items {
                    match item.get_ref() {
                        DeValue::String(s) => {
                            if matches!(field.ty, Ty::IdList) && !seen.insert(s.as_ref()) {
                                self.diags.push(
                                    Diagnostic::warning(
                                        format!("`{s}` is listed twice in `{name}`"),
                                        Some(item.span()),
                                    )
                                    .hint("remove the repeated entry"),
                                );
                                continue;
                            }
                            out.push((s.to_string(), item.span()));
                        }
                        other => {
                            self.error(
                                format!(
                                    "every entry of `{name}` must be a string, found {}",
                                    found(other)
                                ),
                                item.span(),
                                "put each entry in quotes",
                            );
                        }
                    }
                }
                Some(Val::List(out))
            }
            (Ty::StrList | Ty::IdList, DeValue::String(s)) => {
                wrong(self, "an array", format!("write {name} = [\"{s}\"]"))
            }
            (Ty::StrList | Ty::IdList, _) => wrong(
                self,
                "an array of strings",
                format!("write {name} = [\"a\", \"b\"]"),
            ),
            (Ty::Int { min, max }, DeValue::Integer(i)) => {
                let Some(n) = integer(i) else {
                    return wrong(
                        self,
                        "an integer that fits in 64 bits",
                        format!("{name} must be between {min} and {max}"),
                    );
                };
                if n < min || n > max {
                    self.error(
                        format!("`{name} = {n}` is out of range"),
                        span,
                        format!("{name} must be between {min} and {max}"),
                    );
                    return None;
                }
                Some(Val::Int(n))
            }
            (Ty::Int { .. }, DeValue::String(s)) if s.trim().parse::<i64>().is_ok() => wrong(
                self,
                "an integer",
                format!("remove the quotes: {name} = {}", s.trim()),
            ),
            (Ty::Int { min, max }, _) => wrong(
                self,
                "an integer",
                format!("write a whole number between {min} and {max}"),
            ),
            (Ty::Duration { max_secs }, DeValue::String(s)) => match parse_duration(s) {
                Ok(d) if d.as_secs() > max_secs => {
                    self.error(
                        format!("`{name} = \"{s}\"` is absurdly long"),
                        span,
                        format!("{name} may be at most {}d", max_secs / spec::DAY_SECS),
                    );
                    None
                }
                // A zero timeout would kill every attempt at once, a zero poke interval spin,
                // and a zero SLA miss every run: never what was meant.
                Ok(d) if d.is_zero() && ZERO_IS_A_MISTAKE.contains(&name) => {
                    self.error(
                        format!("`{name} = \"{s}\"` is zero"),
                        span,
                        format!("give {name} a length, e.g. \"30m\", or leave it out for none"),
                    );
                    None
                }
                Ok(d) => Some(Val::Dur(d)),
                Err(problem) => {
                    self.error(
                        format!("invalid duration `{s}` for `{name}`: {problem}"),
                        span,
                        "write a number and a unit: 500ms, 30s, 5m, 1h, 1d, or a sum like 1h30m",
                    );
                    None
                }
            },
            (Ty::Duration { .. }, DeValue::Integer(i)) => wrong(
                self,
                "a duration string",
                format!("add a unit: {name} = \"{}s\"", i.as_str()),
            ),
            (Ty::Duration { .. }, _) => {
                wrong(self, "a duration string", format!("write {name} = \"30s\""))
            }
            (Ty::Cron, DeValue::String(s)) => match croner::Cron::from_str(s) {
                Ok(cron) => match crate::schedule::never_fires(s, &cron) {
                    None => Some(Val::Cron(Box::new(cron), s.trim().to_owned())),
                    Some((why, hint)) => {
                        self.error(why, span, hint);
                        None
                    }
                },
                Err(e) => {
                    // croner says "Number out of bounds" without which field or what bounds.
                    let why = cron_field_problem(s).unwrap_or_else(|| e.to_string());
                    self.error(
                        format!("invalid cron expression `{s}`: {why}"),
                        span,
                        "use 5 fields (minute hour day-of-month month day-of-week), e.g. \"0 2 * * *\", or a preset such as \"@daily\"",
                    );
                    None
                }
            },
            (Ty::Cron, _) => wrong(
                self,
                "a cron string",
                "write schedule = \"0 2 * * *\"".into(),
            ),
            (Ty::Timezone, DeValue::String(s)) => match chrono_tz::Tz::from_str(s) {
                Ok(tz) => {
                    if let Some(zone) = fixed_abbreviation(s) {
                        self.warning(
                            format!("`{s}` is a fixed offset with no daylight saving time, not a place's local time"),
                            span,
                            format!("for the clock of a place, write its IANA name, e.g. `{zone}`; keep `{s}` only if the offset must never change"),
                        );
                    }
                    Some(Val::Tz(tz))
                }
                Err(_) => {
                    // An abbreviation is one edit from an unrelated zone (`PST` from `EST`):
                    // name the zone people mean by it instead.
                    let hint = match zone_of_abbreviation(s) {
                        Some(zone) => format!("time zone abbreviations are not zones; write `{zone}`"),
                        None => match did_you_mean(s, chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())) {
                            Some(close) => format!("did you mean `{close}`?"),
                            None => "use an IANA name such as `UTC`, `Europe/Paris` or `America/New_York`".into(),
                        },
                    };
                    self.error(format!("unknown time zone `{s}`"), span, hint);
                    None
                }
            },
            (Ty::Timezone, _) => wrong(self, "a string", "write timezone = \"UTC\"".into()),
            (Ty::Bool, DeValue::Boolean(b)) => Some(Val::Bool(*b)),
            (Ty::Bool, _) => wrong(
                self,
                "a boolean",
                format!("write {name} = true or {name} = false"),
            ),
            (Ty::Date, DeValue::String(text)) => self.date_value(name, text, span),
            (Ty::Date, DeValue::Datetime(dt)) => self.date_value(name, &dt.to_string(), span),
            (Ty::Date, _) => wrong(self, "a date", format!("write {name} = \"2026-01-01\"")),
            (Ty::Catchup, DeValue::Boolean(b)) => Some(Val::Catchup(if *b {
                Catchup::All
            } else {
                Catchup::Latest
            })),
            (Ty::Catchup, DeValue::String(text)) => match text.as_ref() {
                "none" => Some(Val::Catchup(Catchup::None)),
                "latest" => Some(Val::Catchup(Catchup::Latest)),
                "all" => Some(Val::Catchup(Catchup::All)),
                other => {
                    let hint = match did_you_mean(other, ["none", "latest", "all"]) {
                        Some(close) => format!("did you mean `{close}`?"),
                        None => "choose one of: none, latest, all (or true = all, false = latest)"
                            .into(),
                    };
                    self.error(format!("`{other}` is not a valid `catchup`"), span, hint);
                    None
                }
            },
            (Ty::Catchup, _) => wrong(
                self,
                "a string or boolean",
                "write catchup = \"latest\"".into(),
            ),
            (Ty::Enum(values), DeValue::String(s)) => {
                if values.contains(&s.as_ref()) {
                    Some(Val::Str(s.to_string()))
                } else {
                    let hint = match did_you_mean(s, values.iter().copied()) {
                        Some(close) => format!("did you mean `{close}`?"),
                        None => format!("choose one of: {}", values.join(", ")),
                    };
                    self.error(format!("`{s}` is not a valid `{name}`"), span, hint);
                    None
                }
            }
            (Ty::Enum(values), _) => wrong(
                self,
                "a string",
                format!("choose one of: {}", values.join(", ")),
            ),
            (Ty::EnvMap, DeValue::Table(vars)) => {
                let mut out = Vec::new();
                for (key, value) in vars {
                    let var = key.get_ref().as_ref();
                    if !is_name(var) {
                        self.error(
                            format!("`{var}` is not a valid environment variable name"),
                            key.span(),
                            "use letters, digits and `_`, starting with a letter or `_`",
                        );
                        continue;
                    }
                    match value.get_ref() {
                        DeValue::String(s) => {
                            out.push((var.to_owned(), s.to_string(), value.span()))
                        }
                        other => self.error(
                            format!(
                                "environment variable `{var}` must be a string, found {}",
                                found(other)
                            ),
                            value.span(),
                            format!("put the value in quotes: {var} = \"...\""),
                        ),
                    }
                }
                Some(Val::Env(out))
            }
            (Ty::EnvMap, _) => wrong(
                self,
                "a table",
                format!("write {name} = {{ NAME = \"value\" }}"),
            ),
            (Ty::Labels, DeValue::Table(labels)) => self.labels_value(name, label, labels, span),
            (Ty::Labels, DeValue::String(s)) => {
                // `runs_on = "gpu=a100,zone=eu"`, as on the agent's command line.
                let pairs: Option<Vec<String>> = s
                    .split(',')
                    .map(|pair| {
                        let (k, v) = pair.split_once('=')?;
                        let (k, v) = (k.trim(), v.trim());
                        (is_label_name(k) && !v.is_empty()).then(|| format!("{k} = \"{v}\""))
                    })
                    .collect();
                let hint = match pairs {
                    Some(pairs) => {
                        format!("write it as a table: {name} = {{ {} }}", pairs.join(", "))
                    }
                    None => format!(
                        "write {name} = {{ gpu = \"a100\" }}: the labels an agent must have (`{{}}` for any agent)"
                    ),
                };
                wrong(self, "a table", hint)
            }
            (Ty::Labels, _) => wrong(
                self,
                "a table",
                format!(
                    "write {name} = {{ gpu = \"a100\" }}: the labels an agent must have (`{{}}` for any agent)"
                ),
            ),
            (Ty::Custom { .. }, _) => Some(Val::Custom),
        }
    }
}

impl Checker<'_> {
    /// A table of label name = value (`runs_on`), checked so that it can be written on an
    /// agent's command line as `k=v,k=v`.
    fn labels_value(
        &mut self,
        name: &str,
        label: &str,
        labels: &DeTable<'_>,
        span: Range<usize>,
    ) -> Option<Val> {
        let mut out = std::collections::BTreeMap::new();
        for (key, value) in labels {
            let label_name = key.get_ref().as_ref();
            if !is_label_name(label_name) {
                self.error(
                    format!("`{label_name}` in `{name}` of {label} is not a valid label name"),
                    key.span(),
                    "a label name has letters, digits, `_`, `-` and `.` only, e.g. gpu, zone, cuda.version",
                );
                continue;
            }
            let text = match value.get_ref() {
                DeValue::String(text) => text,
                DeValue::Table(inner) => {
                    // `{ cuda.version = "12" }` is a dotted key: a table, not a label name.
                    let dotted = match inner.iter().next().map(|(k, v)| (k, v.get_ref())) {
                        Some((k, DeValue::String(v))) if inner.len() == 1 => Some(format!(
                            "a label name with dots must be quoted: \"{label_name}.{}\" = \"{v}\"",
                            k.get_ref()
                        )),
                        _ => None,
                    };
                    let hint = dotted.unwrap_or_else(|| {
                        format!("write {label_name} = \"...\": each label has one string value")
                    });
                    self.error(
                        format!("label `{label_name}` in `{name}` of {label} must be a string, found a table"),
                        value.span(),
                        hint,
                    );
                    continue;
                }
                other => {
                    let hint = match other {
                        DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) => {
                            let written = self.source.get(value.span()).unwrap_or("...").trim();
                            format!("put the value in quotes: {label_name} = \"{written}\"")
                        }
                        _ => format!(
                            "write {label_name} = \"...\": each label has one string value, which the agent's label must equal"
                        ),
                    };
                    self.error(
                        format!(
                            "label `{label_name}` in `{name}` of {label} must be a string, found {}",
                            found(other)
                        ),
                        value.span(),
                        hint,
                    );
                    continue;
                }
            };
            if text.is_empty() {
                self.error(
                    format!("label `{label_name}` in `{name}` of {label} has an empty value"),
                    value.span(),
                    format!(
                        "write the value the agent's label has, e.g. {label_name} = \"a100\"; `{name} = {{}}` means any agent"
                    ),
                );
                continue;
            }
            if let Some(at) = text.find([',', '=']) {
                let c = &text[at..at + 1];
                let inner = self.inner_span(&value.span(), text, at..at + 1);
                self.error(
                    format!("the value of label `{label_name}` in `{name}` of {label} contains `{c}`"),
                    inner,
                    format!(
                        "an agent's labels are written `vane agent --labels {label_name}=VALUE,other=VALUE`, so a value cannot hold `,` or `=`; a task needs one value per label"
                    ),
                );
                continue;
            }
            out.insert(label_name.to_owned(), text.to_string());
        }
        if labels.len() > spec::MAX_LABELS {
            self.error(
                format!(
                    "`{name}` of {label} has {} labels, more than {}",
                    labels.len(),
                    spec::MAX_LABELS
                ),
                span,
                format!(
                    "an agent must have every one of them; keep at most {} that decide where the task can run",
                    spec::MAX_LABELS
                ),
            );
            return None;
        }
        Some(Val::Labels(out))
    }

    fn date_value(&mut self, name: &str, text: &str, span: Range<usize>) -> Option<Val> {
        let parsed = parse_date_text(text);
        if parsed.is_none() {
            self.error(
                format!("`{text}` is not a date for `{name}`"),
                span,
                "write a date (\"2026-01-01\", midnight in the DAG's time zone) or an RFC 3339 time (\"2026-01-01T02:00:00Z\")",
            );
        }
        parsed
    }
}

fn first_sentence(doc: &str) -> &str {
    doc.split_once(". ").map_or(doc, |(s, _)| s)
}

/// Which field of a 5-field cron expression has a number out of its range, if one has:
/// `the hour 25 is out of range (0-23)`.
fn cron_field_problem(expr: &str) -> Option<String> {
    const FIELDS: [(&str, u32, u32); 5] = [
        ("minute", 0, 59),
        ("hour", 0, 23),
        ("day of the month", 1, 31),
        ("month", 1, 12),
        ("day of the week", 0, 7),
    ];
    let fields: Vec<&str> = expr.split_whitespace().collect();
    // croner's own words for these ("Pattern must have between 5 and 7 fields") name neither
    // what was written nor the presets.
    if let Some(preset) = fields.first().filter(|f| f.starts_with('@')) {
        let known = [
            "@yearly",
            "@annually",
            "@monthly",
            "@weekly",
            "@daily",
            "@hourly",
        ];
        if !known.contains(&preset.to_ascii_lowercase().as_str()) || fields.len() > 1 {
            return Some(format!(
                "`{preset}` is not a preset; the presets are {}, each on its own",
                known.join(", ")
            ));
        }
    }
    if !(5..=7).contains(&fields.len()) {
        return Some(format!(
            "it has {} field{} where cron has 5 (or 6, seconds first)",
            fields.len(),
            if fields.len() == 1 { "" } else { "s" }
        ));
    }
    if fields.len() != FIELDS.len() {
        return None;
    }
    for (field, (what, low, high)) in fields.iter().zip(FIELDS) {
        // Numbers in lists, ranges and steps (`1,5-7/2`); a step is a count, not a value.
        for part in field.split(',') {
            let values = part.split('/').next().unwrap_or_default();
            for number in values.split('-').filter_map(|n| n.parse::<u32>().ok()) {
                if number < low || number > high {
                    return Some(format!(
                        "the {what} {number} is out of range ({low}-{high})"
                    ));
                }
            }
        }
    }
    None
}

const NO_TASKS_HINT: &str = "add a [tasks.NAME] table with a command: a line [tasks.hello], and under it command = \"echo hello\"";

/// Duration keys for which zero is a mistake rather than "none".
const ZERO_IS_A_MISTAKE: &[&str] = &["timeout", "poke_interval", "sla"];

/// The zone meant by a common abbreviation that the zone database does not know.
fn zone_of_abbreviation(abbreviation: &str) -> Option<&'static str> {
    Some(match abbreviation.to_ascii_uppercase().as_str() {
        "PST" | "PDT" | "PT" => "America/Los_Angeles",
        "MDT" | "MT" => "America/Denver",
        "CST" | "CDT" | "CT" => "America/Chicago",
        "EDT" | "ET" => "America/New_York",
        "AKST" | "AKDT" => "America/Anchorage",
        "BST" => "Europe/London",
        "CEST" => "Europe/Paris` or `Europe/Berlin",
        "EEST" => "Europe/Athens` or `Europe/Helsinki",
        "IST" => "Asia/Kolkata` (India), `Europe/Dublin` or `Asia/Jerusalem",
        "JST" => "Asia/Tokyo",
        "KST" => "Asia/Seoul",
        "SGT" => "Asia/Singapore",
        "HKT" => "Asia/Hong_Kong",
        "AEST" | "AEDT" => "Australia/Sydney",
        "NZST" | "NZDT" => "Pacific/Auckland",
        "BRT" => "America/Sao_Paulo",
        _ => return None,
    })
}

/// For a zone the database keeps only for old systems as a fixed offset, the place whose
/// clock people usually mean by it: `EST` stays at UTC-5 in summer, New York does not.
fn fixed_abbreviation(zone: &str) -> Option<&'static str> {
    match zone {
        "EST" => Some("America/New_York"),
        "MST" => Some("America/Denver"),
        _ => None,
    }
}

/// Whether `key` is a misspelling of `known` (not `known` itself): a "did you mean" names it.
fn misspells(key: &str, known: &str) -> bool {
    key != known && did_you_mean(key, [known]).is_some()
}

pub fn suggestion<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str> + Clone) -> String {
    match did_you_mean(word, candidates.clone()) {
        Some(close) => format!("did you mean `{close}`?"),
        None => {
            // A hint names a few: a DAG of 10,000 tasks would otherwise repeat all of them
            // under every misspelt dependency.
            const NAMED: usize = 20;
            let all: Vec<&str> = candidates.into_iter().take(NAMED + 1).collect();
            if all.len() > NAMED {
                format!("expected one of: {}, ...", all[..NAMED].join(", "))
            } else {
                format!("expected one of: {}", all.join(", "))
            }
        }
    }
}

/// The most tasks a cycle's message names. Ten names already fill a line or two of a
/// terminal, and more do not help: the caret points at the first dependency, and removing
/// any one dependency is the fix. Naming every task of a 100,000-task cycle made a 1.2 MB
/// message.
const CYCLE_TASKS_NAMED: usize = 10;

/// `n` with its thousands separated by commas, so that a count of five or six digits reads
/// at a glance (99,990).
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// The shortest walk along `depends_on` edges from `start` back to `start`, inside one
/// strongly connected component.
fn cycle_path(start: usize, members: &[usize], edges: &[Vec<(usize, Range<usize>)>]) -> Vec<usize> {
    let members: std::collections::HashSet<usize> = members.iter().copied().collect();
    let mut parent: HashMap<usize, usize> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for (next, _) in &edges[node] {
            if !members.contains(next) {
                continue;
            }
            if *next == start {
                let mut chain = Vec::new();
                let mut at = node;
                while at != start {
                    chain.push(at);
                    at = parent[&at];
                }
                chain.reverse();
                let mut walk = vec![start];
                walk.extend(chain);
                walk.push(start);
                return walk;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(*next) {
                e.insert(node);
                queue.push_back(*next);
            }
        }
    }
    vec![start, start]
}

/// Every task that task `index` depends on, directly or not.
fn ancestors(tasks: &[Task], index: usize) -> Vec<usize> {
    let mut seen = vec![false; tasks.len()];
    let mut found = Vec::new();
    let mut stack = tasks[index].depends_on.clone();
    while let Some(t) = stack.pop() {
        if !std::mem::replace(&mut seen[t], true) {
            found.push(t);
            stack.extend(tasks[t].depends_on.iter().copied());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_in_thousands() {
        let cases = [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (99_990, "99,990"),
            (1_234_567, "1,234,567"),
        ];
        for (n, text) in cases {
            assert_eq!(grouped(n), text);
        }
    }
}
