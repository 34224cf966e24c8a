//! Built-in task kinds (`kind = "validate"`, `kind = "deploy"`) as a registry the caller passes
//! in: the crate that carries a kind out also owns its keys and their parser.
//!
//! Why a registry rather than a loader above `vane-dag`: a DAG file is one TOML document whose
//! generic checks (unknown keys, types, templates, dependencies) and kind-specific checks must
//! report together, in file order, so that `vane validate` shows every problem of every file in
//! one pass. `vane-dag` walks the file once; when it meets a task of a registered kind it hands
//! that task's table to the kind's [`TaskKind::parse`] with a [`crate::config::TaskChecker`]
//! that reports into the same list of diagnostics. The dependency still points one way
//! (`vane-check`, `vane-deploy` → `vane-dag`): the binary and `vane-app` build the registry.
//!
//! A program that registers no kinds (a test of the engine, say) still parses every command
//! and sensor task; a built-in task is then an error saying so.

use std::any::Any;
use std::sync::Arc;

use crate::config::{DeValue, Field, Spanned, TaskChecker};

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
    ) -> Option<Arc<dyn Any + Send + Sync>>;
}

/// The built-in task kinds a program knows, in the order they were registered.
#[derive(Clone, Default)]
pub struct Kinds {
    kinds: Vec<&'static dyn TaskKind>,
}

impl Kinds {
    /// No built-in kinds: command and sensor tasks only.
    pub fn none() -> Self {
        Self::default()
    }

    /// These kinds and `kind`.
    #[must_use]
    pub fn with(mut self, kind: &'static dyn TaskKind) -> Self {
        self.kinds.push(kind);
        self
    }

    /// The kind called `name`, when registered.
    pub fn get(&self, name: &str) -> Option<&'static dyn TaskKind> {
        self.kinds.iter().copied().find(|k| k.name() == name)
    }

    /// Every registered kind.
    pub fn iter(&self) -> impl Iterator<Item = &'static dyn TaskKind> + '_ {
        self.kinds.iter().copied()
    }
}

impl std::fmt::Debug for Kinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.kinds.iter().map(|k| k.name()))
            .finish()
    }
}
