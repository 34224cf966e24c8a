//! What the domain crates parse, registered by the caller: built-in task kinds
//! (`kind = "validate"`, `kind = "deploy"`) and sections (`[alerts]` of `vane.toml`,
//! `[[alerts]]` of a DAG file). The crate that carries a kind or a section out owns its keys and
//! their parser; `vane-dag` owns the DAG model and the files.
//!
//! Why a registry rather than a loader above `vane-dag`: a file is one TOML document whose
//! generic checks (unknown keys, types, templates, dependencies) and domain checks must report
//! together, in file order, so that `vane validate` shows every problem of every file in one
//! pass, and so that a DAG with a broken `validate` task is refused by every program that loads
//! it (the scheduler, `vane run`, the API), not only by the one that knows validation. `vane-dag`
//! walks each file once; when it meets a task of a registered kind, or a registered section, it
//! hands that table to the registered parser with a [`Checker`] reporting into the same list of
//! diagnostics, and keeps what the parser built as an opaque value ([`crate::Builtin`],
//! [`Sections`]) that the owning crate reads back with its own type. The dependencies still
//! point one way (`vane-check`, `vane-deploy`, `vane-alerts` → `vane-dag`): `vane-app` builds
//! the registry of the vane binary (`vane_app::registry()`), and a program that registers
//! nothing (a test of the engine) still reads every command and sensor task.

use std::any::Any;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::config::{Checker, DeValue, Field, Spanned, TaskChecker};

/// A value a registered parser built, which only its own crate knows the type of.
pub type Opaque = Arc<dyn Any + Send + Sync>;

/// A built-in task kind: its name, its own keys and their parser.
pub trait TaskKind: Send + Sync {
    /// The value of `kind` that selects it.
    fn name(&self) -> &'static str;

    /// Keys only a task of this kind may set. `vane-dag` checks them like any key (unknown
    /// names, types, bounds) before [`TaskKind::parse`], and lists them in `vane schema` and
    /// the README's reference.
    fn keys(&self) -> &'static [Field];

    /// Reads the kind's keys of task `task_id` (the whole task table is `task`) into the spec
    /// its crate carries out; `None` after reporting what is wrong through `cx`.
    fn parse(
        &self,
        cx: &mut TaskChecker<'_, '_>,
        task_id: &str,
        task: &Spanned<DeValue<'_>>,
    ) -> Option<Opaque>;
}

/// The parse function of a [`KindParser`]: [`TaskKind::parse`] returning the kind's own type.
pub type ParseKind<T> = fn(&mut TaskChecker<'_, '_>, &str, &Spanned<DeValue<'_>>) -> Option<T>;

/// A [`TaskKind`] made of a name, a key table and a function that parses into the kind's own
/// spec type: what a domain crate declares as a `static` and the program registers.
pub struct KindParser<T> {
    name: &'static str,
    keys: &'static [Field],
    parse: ParseKind<T>,
}

impl<T> KindParser<T> {
    pub const fn new(name: &'static str, keys: &'static [Field], parse: ParseKind<T>) -> Self {
        Self { name, keys, parse }
    }
}

impl<T: Any + Send + Sync> TaskKind for KindParser<T> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn keys(&self) -> &'static [Field] {
        self.keys
    }

    fn parse(
        &self,
        cx: &mut TaskChecker<'_, '_>,
        task_id: &str,
        task: &Spanned<DeValue<'_>>,
    ) -> Option<Opaque> {
        (self.parse)(cx, task_id, task).map(|spec| Arc::new(spec) as Opaque)
    }
}

/// A top-level table of the scheduler config that is also a list of tables (`[[name]]`) of a
/// DAG file, such as `alerts`.
pub trait Section: Send + Sync {
    /// The table's name in both files.
    fn name(&self) -> &'static str;

    /// What the DAG file's `[[name]]` tables are, for the reference.
    fn dag_doc(&self) -> &'static str;

    /// What one `[[name]]` table of a DAG file is, for `vane schema`.
    fn dag_entry_doc(&self) -> &'static str;

    /// The keys of one `[[name]]` table of a DAG file, for the reference and `vane schema`.
    fn dag_keys(&self) -> &'static [&'static [Field]];

    /// Reads the section of the scheduler config; `dir` is the config file's folder, which
    /// relative paths in it start from. Reports every problem through `cx`.
    fn parse_config(
        &self,
        cx: &mut Checker<'_>,
        value: &Spanned<DeValue<'_>>,
        dir: &Path,
    ) -> Opaque;

    /// Reads the section of DAG `dag_id`, whose tasks are `tasks` (as written, so the section
    /// is checked even when a task has a mistake). Reports every problem through `cx`.
    fn parse_dag(
        &self,
        cx: &mut Checker<'_>,
        value: &Spanned<DeValue<'_>>,
        dag_id: &str,
        tasks: &[&str],
    ) -> Opaque;
}

/// The task kinds and sections a program knows, in the order they were registered.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: Vec<&'static dyn TaskKind>,
    sections: Vec<&'static dyn Section>,
}

impl Registry {
    /// Nothing registered: command and sensor tasks, `[scheduler]` and `[pools]` only.
    pub fn none() -> Self {
        Self::default()
    }

    /// This registry and task kind `kind`.
    #[must_use]
    pub fn kind(mut self, kind: &'static dyn TaskKind) -> Self {
        self.kinds.push(kind);
        self
    }

    /// This registry and section `section`.
    #[must_use]
    pub fn section(mut self, section: &'static dyn Section) -> Self {
        self.sections.push(section);
        self
    }

    /// The kind called `name`, when registered.
    pub fn find_kind(&self, name: &str) -> Option<&'static dyn TaskKind> {
        self.kinds.iter().copied().find(|k| k.name() == name)
    }

    /// Every registered kind.
    pub fn kinds(&self) -> impl Iterator<Item = &'static dyn TaskKind> + '_ {
        self.kinds.iter().copied()
    }

    /// The section called `name`, when registered.
    pub fn find_section(&self, name: &str) -> Option<&'static dyn Section> {
        self.sections.iter().copied().find(|s| s.name() == name)
    }

    /// Every registered section.
    pub fn sections(&self) -> impl Iterator<Item = &'static dyn Section> + '_ {
        self.sections.iter().copied()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field(
                "kinds",
                &self.kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
            )
            .field(
                "sections",
                &self.sections.iter().map(|s| s.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What registered [`Section`]s read from one file, by section name.
#[derive(Clone, Default)]
pub struct Sections {
    read: BTreeMap<&'static str, Opaque>,
}

impl Sections {
    pub(crate) fn insert(&mut self, name: &'static str, value: Opaque) {
        self.read.insert(name, value);
    }

    /// What section `name` read, when the file has it and it is a `T`.
    pub fn get<T: Any>(&self, name: &str) -> Option<&T> {
        self.read.get(name)?.downcast_ref()
    }
}

impl std::fmt::Debug for Sections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.read.keys()).finish()
    }
}
