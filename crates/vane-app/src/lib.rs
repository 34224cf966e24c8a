//! vane's application layer: every operation a person or the API can perform (trigger, pause,
//! clear, approve, reject, rollback, ack, resolve, snooze, ...) and every read behind `--json`
//! and the API, as typed functions that return a typed value or an [`AppError`].
//!
//! The `vane` binary prints these values; [`HttpApi`] serialises them. Neither calls the
//! other, so an HTTP request never prints and a status code never depends on a message.
//!
//! ```no_run
//! let app = vane_app::App::new(vane_app::Paths {
//!     dags: "dags".into(),
//!     db: ".vane/vane.db".into(),
//!     state_dir: None,
//!     config: "vane.toml".into(),
//!     work: None,
//!     root: ".".into(),
//! });
//! let store = app.open_store()?;
//! for run in vane_app::runs::list(&*store, None, &[], 10)? {
//!     println!("{} {}", run.id, run.state);
//! }
//! # Ok::<(), vane_app::AppError>(())
//! ```

pub mod agents;
pub mod alerts;
mod api;
pub mod backfills;
pub mod dags;
mod error;
pub mod lineage;
pub mod logs;
pub mod models;
pub mod reads;
pub mod requests;
pub mod runs;
pub mod why;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use api::HttpApi;
pub use error::AppError;
use vane_dag::{Dag, DagFile, DagSet, Registry};
use vane_engine::Engine;
use vane_store::{BackendKind, Store};

/// What vane's files are read with: every built-in task kind and config section, each parsed
/// by the crate that carries it out (see [`vane_dag::Registry`]). Every program that loads a
/// DAG file or `vane.toml` uses it, so all of them refuse the same mistakes.
pub fn registry() -> Registry {
    Registry::none()
        .kind(&vane_check::VALIDATE)
        .kind(&vane_deploy::DEPLOY)
        .section(&vane_alerts::ALERTS)
}

/// The `vane validate` command that shows why `file` does not validate: the file with the
/// others a problem of it is about (a DAG id they share), which it alone would not show.
#[must_use]
pub fn validate_command(file: &DagFile) -> String {
    std::iter::once(&file.path)
        .chain(file.shared_id.iter().flat_map(|s| &s.with))
        .fold("vane validate".to_owned(), |mut command, path| {
            command.push(' ');
            command.push_str(&vane_dag::shell_quote(&path.display().to_string()));
            command
        })
}

/// Where this project's DAG files, database, config and work folder are.
#[derive(Debug, Clone)]
pub struct Paths {
    pub dags: PathBuf,
    /// A SQLite file or a `postgres://` URL.
    pub db: String,
    /// Logs, the work folder and the content store; by default the SQLite file's folder, or
    /// `.vane` beside the DAG folder's parent for PostgreSQL.
    pub state_dir: Option<PathBuf>,
    pub config: PathBuf,
    pub work: Option<PathBuf>,
    /// The project folder, where tasks and the commands people run by hand (`vane rollback`)
    /// run.
    pub root: PathBuf,
}

/// Builds the engine for a store: the binary owns its wiring (executor, task paths, the
/// built-in command), the application layer only asks for one when an action needs it
/// (creating a run, adopting an orphaned one before a clear).
pub type EngineFactory = dyn Fn(Duration) -> Result<Engine<'static>, AppError> + Send + Sync;

/// The application: the project's paths and how to build an engine.
#[derive(Clone)]
pub struct App {
    pub paths: Paths,
    engine: Option<Arc<EngineFactory>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("paths", &self.paths).finish()
    }
}

/// A store as the application layer holds it: any backend, movable to a request's thread.
pub type BoxStore = Box<dyn Store + Send>;

impl App {
    /// An application without an engine: reads, and actions that need no engine.
    #[must_use]
    pub fn new(paths: Paths) -> Self {
        Self {
            paths,
            engine: None,
        }
    }

    /// With the engine factory that triggering and clearing need.
    #[must_use]
    pub fn with_engine(mut self, engine: Arc<EngineFactory>) -> Self {
        self.engine = Some(engine);
        self
    }

    /// An engine with store threads of its own: it never shares the caller's connection.
    pub(crate) fn engine(&self, kill_grace: Duration) -> Result<Engine<'static>, AppError> {
        match &self.engine {
            Some(build) => build(kill_grace),
            None => Err(AppError::Engine(vane_engine::EngineError::Internal(
                "this vane was wired without an engine".into(),
            ))),
        }
    }

    /// Opens the store. The one place that names a backend.
    ///
    /// # Errors
    /// The database cannot be opened or migrated.
    pub fn open_store(&self) -> Result<BoxStore, AppError> {
        Ok(vane_store::open(&self.paths.db)?)
    }

    /// Opens the store if it exists; otherwise an empty one in memory, and why, for the caller
    /// to say: a command that only reads never creates a database (a mistyped `--db`, or a
    /// folder outside the project, would otherwise leave an empty one behind). `where_from`
    /// says where the database was looked for.
    ///
    /// # Errors
    /// As [`App::open_store`].
    pub fn open_existing_store(
        &self,
        where_from: &str,
    ) -> Result<(BoxStore, Option<String>), AppError> {
        if self.backend() == BackendKind::Sqlite && !Path::new(&self.paths.db).exists() {
            let why = format!(
                "no vane database at {} ({where_from}), so nothing has run here yet: run a DAG in the project (`vane run DAG`), or name the database with --db or VANE_DB",
                self.paths.db
            );
            return Ok((vane_store::open(":memory:")?, Some(why)));
        }
        Ok((self.open_store()?, None))
    }

    /// Which backend `--db` names.
    #[must_use]
    pub fn backend(&self) -> BackendKind {
        BackendKind::of(&self.paths.db)
    }

    /// `--db` as another process on this host can use it: a SQLite path made absolute (a task
    /// may run in another directory), a URL as it is.
    ///
    /// # Errors
    /// The path cannot be made absolute.
    pub fn db_for_children(&self) -> Result<String, AppError> {
        Ok(match self.backend() {
            BackendKind::Sqlite => std::path::absolute(&self.paths.db)
                .map_err(AppError::io("cannot find the database path"))?
                .display()
                .to_string(),
            BackendKind::Postgresql => self.paths.db.clone(),
        })
    }

    /// Where logs, the work folder and the content store live: `--state-dir` when given;
    /// otherwise beside a SQLite file, as always, and `.vane` for a PostgreSQL database,
    /// which has no folder of its own.
    #[must_use]
    pub fn state_dir(&self) -> PathBuf {
        if let Some(dir) = &self.paths.state_dir {
            return dir.clone();
        }
        match self.backend() {
            BackendKind::Sqlite => Path::new(&self.paths.db)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
            BackendKind::Postgresql => PathBuf::from(".vane"),
        }
    }

    /// Every DAG file in the DAG folder, valid or not.
    ///
    /// # Errors
    /// The folder cannot be read.
    pub fn load_dags(&self) -> Result<DagSet, AppError> {
        vane_dag::load_dir(&self.paths.dags, &registry()).map_err(AppError::io(format!(
            "cannot read the DAG folder {} (set it with --dags or VANE_DAGS)",
            self.paths.dags.display()
        )))
    }

    /// Pools, the global task limit and alerts from the scheduler config, when there is one.
    ///
    /// # Errors
    /// [`AppError::Config`] with the rendered diagnostics when it does not validate.
    pub fn config(&self) -> Result<vane_dag::SchedulerConfig, AppError> {
        let path = &self.paths.config;
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(e) => {
                return Err(AppError::Io {
                    context: format!("cannot read {}", path.display()),
                    source: e,
                });
            }
        };
        let invalid = |source: &str, diagnostics: &[vane_dag::Diagnostic]| {
            let shown = path.display().to_string();
            let rendered = diagnostics
                .iter()
                .map(|d| d.render(&shown, source))
                .collect();
            AppError::Config {
                path: shown,
                diagnostics: rendered,
            }
        };
        let source = match String::from_utf8(bytes) {
            Ok(source) => source,
            // Found by line and column, as in a DAG file.
            Err(e) => {
                let (source, diagnostic) = vane_dag::not_utf8_text(
                    e.as_bytes(),
                    e.utf8_error(),
                    "the config must be UTF-8: save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)",
                );
                return Err(invalid(&source, &[diagnostic]));
            }
        };
        let dir = path.parent().unwrap_or(Path::new(""));
        vane_dag::parse_config_in(&source, dir, &registry())
            .map_err(|diagnostics| invalid(&source, &diagnostics))
    }

    /// Finds a valid DAG by id, or explains why it cannot run.
    ///
    /// # Errors
    /// [`AppError::InvalidDag`] when its file does not validate, [`AppError::NotFound`] when no
    /// file has that id.
    pub fn find_dag<'a>(
        &self,
        set: &'a DagSet,
        id: &str,
    ) -> Result<(&'a Dag, &'a DagFile), AppError> {
        if let Some(found) = set.dags().find(|(d, _)| d.id == id) {
            return Ok(found);
        }
        if let Some(file) = set.find(id) {
            return Err(AppError::InvalidDag {
                message: format!(
                    "DAG `{id}` in {} does not validate; fix the errors above ({})",
                    file.path.display(),
                    validate_command(file)
                ),
                diagnostics: file.render_diagnostics(),
            });
        }
        Err(self.unknown_dag(set, id))
    }

    pub(crate) fn unknown_dag(&self, set: &DagSet, id: &str) -> AppError {
        AppError::NotFound(format!(
            "no DAG `{id}` in {}; {}",
            self.paths.dags.display(),
            known_dags(set, id)
        ))
    }
}

/// The DAGs a person could have meant by `id`: the closest first, when one is close enough to
/// be a typo, then all of them, so the fix is on the same line as the mistake.
pub(crate) fn known_dags(set: &DagSet, id: &str) -> String {
    let ids: Vec<&str> = set.dags().map(|(d, _)| d.id.as_str()).collect();
    if ids.is_empty() {
        return "known DAGs: none".to_owned();
    }
    let hint = vane_dag::did_you_mean(id, ids.iter().copied())
        .map(|close| format!("did you mean `{close}`? "))
        .unwrap_or_default();
    format!("{hint}known DAGs: {}", ids.join(", "))
}

/// The name a person acts under: the one given, or `$USER`, or, where `$USER` is unset (under
/// systemd, in containers), the operating system's name for this process's user.
#[must_use]
pub fn who(by: Option<&str>) -> String {
    by.map(str::to_owned)
        .filter(|u| !u.trim().is_empty())
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::geteuid())
                .ok()
                .flatten()
                .map(|u| u.name)
        })
        .unwrap_or_else(|| format!("uid {}", nix::unistd::geteuid()))
}

/// This host's name, as runs and attempts record it.
#[must_use]
pub fn host() -> String {
    // Containers and network namespaces can share a kernel hostname across what are, to vane,
    // different hosts; `VANE_HOST` names this one explicitly.
    if let Some(host) = std::env::var("VANE_HOST")
        .ok()
        .filter(|h| !h.trim().is_empty())
    {
        return host.trim().to_owned();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
