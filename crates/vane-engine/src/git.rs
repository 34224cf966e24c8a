//! Which commit the DAGs were at when a run started.

use std::path::Path;
use std::process::Command;

use vane_store::GitState;

/// The commit checked out in the git work tree around `dag_file`, and whether the run used
/// anything not in that commit: uncommitted changes to tracked files, or a DAG file git does
/// not track. Untracked files elsewhere (vane's own state folder among them) do not count.
/// `None` outside a git repository or without `git`.
pub fn git_state(dag_file: &Path) -> Option<GitState> {
    let dir = match dag_file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = dag_file.file_name()?;
    let git = |args: &[&std::ffi::OsStr]| {
        Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = git(&["rev-parse".as_ref(), "HEAD".as_ref()])?;
    let changed = !git(&[
        "status".as_ref(),
        "--porcelain".as_ref(),
        "--untracked-files=no".as_ref(),
    ])?
    .is_empty();
    let untracked_dag = git(&[
        "ls-files".as_ref(),
        "--error-unmatch".as_ref(),
        "--".as_ref(),
        name,
    ])
    .is_none();
    Some(GitState {
        commit,
        dirty: changed || untracked_dag,
    })
}
