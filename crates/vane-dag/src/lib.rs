//! The DAG model of vane and the parser that checks DAG files like a compiler.
//!
//! A DAG file is TOML; [`parse_dag`] turns its text into a checked [`Dag`] or a list of
//! [`Diagnostic`]s, each pointing at a line and column with a hint. Nothing here touches
//! processes or databases; [`load_dir`] only reads files.
//!
//! The checker behind those diagnostics is public, in [`config`], so that the crates that own a
//! part of the files (`vane-check` the keys of a `validate` task, `vane-deploy` those of a
//! `deploy` task, `vane-alerts` the `[alerts]` section) read it with the same errors; they are
//! handed their tables through a [`Registry`] ([`parse_dag_with`], [`load_dir`]), whose module
//! says why it is done this way.
//!
//! ```
//! let parsed = vane_dag::parse_dag(
//!     r#"
//! [tasks.extract]
//! command = "echo {{ ds }}"
//! [tasks.train]
//! command = "echo train"
//! depends_on = ["extract"]
//! "#,
//!     "example",
//! );
//! let dag = parsed.dag.expect("valid");
//! assert_eq!(dag.id, "example");
//! assert_eq!(dag.tasks[1].depends_on, vec![0]);
//! ```

pub mod config;
mod diag;
mod duration;
mod literal;
mod load;
mod model;
mod parse;
mod registry;
mod schedule;
mod spec;
mod template;
mod url;

pub use diag::{Diagnostic, Severity, Tally, did_you_mean};
pub use duration::{format_duration, parse_duration};
pub use load::{DagFile, DagSet, SharedId, load_dir, load_paths, not_utf8_text};
pub use model::{
    ArtifactRef, Backoff, Builtin, Cadence, Catchup, Dag, Overlap, ParamValue, RetryPolicy,
    Schedule, Task, TriggerRule,
};
pub use parse::{
    Parsed, SchedulerConfig, parse_config, parse_config_in, parse_dag, parse_dag_with,
};
pub use registry::{KindParser, Opaque, ParseKind, Registry, Section, Sections, TaskKind};
pub use schedule::{parse_when, resolve_local};
pub use spec::{json_schema, reference_markdown};
pub use template::{BUILTIN_VARIABLES, Template, Var, shell_quote};
