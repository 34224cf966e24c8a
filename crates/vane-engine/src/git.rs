//! Which commit the DAGs were at when a run started.

use std::path::Path;
use std::process::Command;

use vane_store::GitState;

/// The commit checked out in the git work tree around `dir`, and whether that tree has
/// uncommitted changes; `None` outside a git repository or without `git`.
pub fn git_state(dir: &Path) -> Option<GitState> {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = git(&["rev-parse", "HEAD"])?;
    let dirty = !git(&["status", "--porcelain"])?.is_empty();
    Some(GitState { commit, dirty })
}
