//! End-to-end tests with real processes.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use tokio::sync::oneshot;
use vane_exec::{
    ExecError, Executor, Job, Launched, Outcome, ProcessExecutor, kill_group_if_same,
    process_start_time,
};

const GRACE: Duration = Duration::from_millis(200);

fn job(dir: &TempDir, command: &str) -> Job {
    Job {
        command: command.to_owned(),
        env: Vec::new(),
        cwd: Some(dir.path().to_owned()),
        log_path: dir.path().join("task.log"),
        timeout: None,
        kill_grace: GRACE,
    }
}

fn launch(job: Job) -> Launched {
    ProcessExecutor.launch(job).expect("launch")
}

/// Waits for the supervisor's report. The limit only turns a hang into a failure.
async fn outcome(done: oneshot::Receiver<Outcome>) -> Outcome {
    tokio::time::timeout(Duration::from_secs(30), done)
        .await
        .expect("supervisor never reported")
        .expect("supervisor dropped the report")
}

async fn run(job: Job) -> Outcome {
    outcome(launch(job).done).await
}

fn log(dir: &TempDir) -> String {
    fs::read_to_string(dir.path().join("task.log")).expect("read log")
}

/// Whether `pid` is a process still running code (zombies count as dead: in some
/// containers nothing reaps orphans).
fn is_running(pid: u32) -> bool {
    let Ok(text) = fs::read(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let close = text.iter().rposition(|&b| b == b')').expect("comm");
    !matches!(text.get(close + 2), Some(b'Z' | b'X' | b'x'))
}

/// Polls until the file holds `count` lines of pids written by a task script.
async fn pids_in(path: &Path, count: usize) -> Vec<u32> {
    let poll = async {
        loop {
            if let Ok(text) = fs::read_to_string(path) {
                let pids: Vec<u32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
                if pids.len() >= count && text.ends_with('\n') {
                    return pids;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), poll)
        .await
        .expect("task never wrote its pids")
}

fn pid_file(dir: &TempDir) -> PathBuf {
    dir.path().join("pids")
}

#[tokio::test]
async fn exit_zero_is_success() {
    let dir = TempDir::new().unwrap();
    let outcome = run(job(&dir, "true")).await;
    assert_eq!(outcome, Outcome::Exited { code: 0 });
    assert!(outcome.success());
}

#[tokio::test]
async fn failing_command_reports_its_exit_code() {
    let dir = TempDir::new().unwrap();
    let outcome = run(job(&dir, "echo failing; exit 3")).await;
    assert_eq!(outcome, Outcome::Exited { code: 3 });
    assert!(!outcome.success());
    assert_eq!(outcome.describe(), "exit code 3");
    assert_eq!(log(&dir), "failing\n");
}

#[tokio::test]
async fn command_not_found_is_an_exit_code_not_an_error() {
    let dir = TempDir::new().unwrap();
    let outcome = run(job(&dir, "definitely-not-a-command-vane-test")).await;
    assert_eq!(outcome, Outcome::Exited { code: 127 });
    assert!(log(&dir).contains("definitely-not-a-command-vane-test"));
}

#[tokio::test]
async fn signal_from_elsewhere_is_signaled() {
    let dir = TempDir::new().unwrap();
    let outcome = run(job(&dir, "kill -9 $$")).await;
    assert_eq!(outcome, Outcome::Signaled { signal: 9 });
    assert_eq!(outcome.describe(), "killed by signal 9 (SIGKILL)");
}

#[tokio::test]
async fn stdout_and_stderr_share_the_log_in_write_order() {
    let dir = TempDir::new().unwrap();
    let outcome = run(job(
        &dir,
        "echo one; echo two >&2; echo three; printf four >&2",
    ))
    .await;
    assert!(outcome.success());
    assert_eq!(log(&dir), "one\ntwo\nthree\nfour");
}

#[tokio::test]
async fn log_is_appended_and_its_directories_created() {
    let dir = TempDir::new().unwrap();
    let log_path = dir.path().join("logs/run-1/task.log");
    for word in ["first", "second"] {
        let job = Job {
            log_path: log_path.clone(),
            ..job(&dir, &format!("echo {word}"))
        };
        assert!(run(job).await.success());
    }
    assert_eq!(fs::read_to_string(&log_path).unwrap(), "first\nsecond\n");
}

#[tokio::test]
async fn a_log_folder_removed_between_two_jobs_is_made_again() {
    let dir = TempDir::new().unwrap();
    let folder = dir.path().join("logs/run-1");
    for (task, word) in [("a", "first"), ("b", "second")] {
        let job = Job {
            log_path: folder.join(format!("{task}.log")),
            ..job(&dir, &format!("echo {word}"))
        };
        assert!(run(job).await.success());
        assert_eq!(
            fs::read_to_string(folder.join(format!("{task}.log"))).unwrap(),
            format!("{word}\n")
        );
        // A person clears the logs while the run goes on.
        fs::remove_dir_all(dir.path().join("logs")).unwrap();
    }
}

#[tokio::test]
async fn env_is_added_to_the_inherited_environment() {
    let dir = TempDir::new().unwrap();
    let job = Job {
        env: vec![("VANE_TEST_VALUE".to_owned(), "a b $c".to_owned())],
        ..job(&dir, r#"printf '%s|%s' "$VANE_TEST_VALUE" "$PATH""#)
    };
    assert!(run(job).await.success());
    let path = std::env::var("PATH").unwrap_or_default();
    assert_eq!(log(&dir), format!("a b $c|{path}"));
}

#[tokio::test]
async fn runs_in_the_given_directory() {
    let dir = TempDir::new().unwrap();
    let work = dir.path().join("work");
    fs::create_dir(&work).unwrap();
    let job = Job {
        cwd: Some(work.clone()),
        ..job(&dir, "pwd -P")
    };
    assert!(run(job).await.success());
    let expected = work.canonicalize().unwrap();
    assert_eq!(log(&dir).trim_end(), expected.to_str().unwrap());
}

#[tokio::test]
async fn stdin_is_empty() {
    let dir = TempDir::new().unwrap();
    let outcome = run(job(&dir, "cat; echo end")).await;
    assert!(outcome.success());
    assert_eq!(log(&dir), "end\n");
}

#[tokio::test]
async fn missing_cwd_is_an_error() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("missing");
    let job = Job {
        cwd: Some(missing.clone()),
        ..job(&dir, "true")
    };
    match ProcessExecutor.launch(job) {
        Err(error @ ExecError::Cwd { .. }) => {
            assert!(error.to_string().contains(missing.to_str().unwrap()));
        }
        other => panic!("expected a Cwd error, got {other:?}"),
    }
}

#[tokio::test]
async fn cwd_that_is_a_file_is_an_error() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, "").unwrap();
    let job = Job {
        cwd: Some(file),
        ..job(&dir, "true")
    };
    assert!(matches!(
        ProcessExecutor.launch(job),
        Err(ExecError::Cwd { .. })
    ));
}

#[tokio::test]
async fn unopenable_log_is_an_error() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, "").unwrap();
    let log_path = file.join("task.log");
    let job = Job {
        log_path: log_path.clone(),
        ..job(&dir, "true")
    };
    match ProcessExecutor.launch(job) {
        Err(error @ ExecError::LogFile { .. }) => {
            assert!(error.to_string().contains(log_path.to_str().unwrap()));
        }
        other => panic!("expected a LogFile error, got {other:?}"),
    }
}

#[test]
fn launch_outside_a_runtime_is_an_error() {
    let dir = TempDir::new().unwrap();
    assert!(matches!(
        ProcessExecutor.launch(job(&dir, "true")),
        Err(ExecError::NoRuntime)
    ));
}

#[tokio::test]
async fn works_as_a_trait_object() {
    let dir = TempDir::new().unwrap();
    let executor: Arc<dyn Executor> = Arc::new(ProcessExecutor);
    let launched = executor.launch(job(&dir, "exit 7")).unwrap();
    assert_eq!(outcome(launched.done).await, Outcome::Exited { code: 7 });
}

#[tokio::test]
async fn timeout_kills_the_whole_tree() {
    let dir = TempDir::new().unwrap();
    let job = Job {
        timeout: Some(Duration::from_millis(300)),
        ..job(
            &dir,
            "sleep 1000 & echo $! >> pids; sleep 1000 & echo $! >> pids; wait",
        )
    };
    let launched = launch(job);
    let leader = launched.pid;
    assert_eq!(outcome(launched.done).await, Outcome::TimedOut);
    let pids = pids_in(&pid_file(&dir), 2).await;
    assert_eq!(pids.len(), 2);
    for pid in pids.into_iter().chain([leader]) {
        assert!(!is_running(pid), "process {pid} survived the timeout");
    }
}

#[tokio::test]
async fn sigterm_ignorers_get_sigkill_after_the_grace() {
    let dir = TempDir::new().unwrap();
    let job = Job {
        timeout: Some(Duration::from_millis(300)),
        ..job(&dir, "trap '' TERM; sleep 1000 & echo $! > pids; wait")
    };
    let launched = launch(job);
    let leader = launched.pid;
    assert_eq!(outcome(launched.done).await, Outcome::TimedOut);
    let pids = pids_in(&pid_file(&dir), 1).await;
    for pid in pids.into_iter().chain([leader]) {
        assert!(!is_running(pid), "process {pid} survived SIGKILL");
    }
}

#[tokio::test]
async fn cancel_kills_the_whole_tree() {
    let dir = TempDir::new().unwrap();
    let launched = launch(job(
        &dir,
        "sleep 1000 & echo $! >> pids; (sleep 1000; echo never) & echo $! >> pids; wait",
    ));
    let pids = pids_in(&pid_file(&dir), 2).await;
    let other = launched.kill.clone();
    launched.kill.kill();
    other.kill();
    assert!(other.is_killed());
    assert_eq!(outcome(launched.done).await, Outcome::Cancelled);
    for pid in pids.into_iter().chain([launched.pid]) {
        assert!(!is_running(pid), "process {pid} survived the cancel");
    }
    assert_eq!(log(&dir), "");
}

#[tokio::test]
async fn cancel_right_after_launch() {
    let dir = TempDir::new().unwrap();
    let launched = launch(job(&dir, "sleep 1000"));
    launched.kill.kill();
    assert_eq!(outcome(launched.done).await, Outcome::Cancelled);
    assert!(!is_running(launched.pid));
}

#[tokio::test]
async fn kill_after_the_end_is_a_no_op() {
    let dir = TempDir::new().unwrap();
    let launched = launch(job(&dir, "exit 2"));
    let kill = launched.kill.clone();
    assert_eq!(outcome(launched.done).await, Outcome::Exited { code: 2 });
    kill.kill();
    kill.kill();
}

#[tokio::test]
async fn dropping_the_receiver_does_not_stop_supervision() {
    let dir = TempDir::new().unwrap();
    let job = Job {
        timeout: Some(Duration::from_millis(100)),
        ..job(&dir, "sleep 1000 & echo $! > pids; wait")
    };
    let launched = launch(job);
    drop(launched.done);
    let pids = pids_in(&pid_file(&dir), 1).await;
    // Without a report to wait for, watch the processes instead.
    let gone = async {
        while pids
            .iter()
            .chain([&launched.pid])
            .any(|&pid| is_running(pid))
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), gone)
        .await
        .expect("processes were never killed");
}

#[tokio::test]
async fn leftover_processes_are_killed_after_the_leader_exits() {
    let dir = TempDir::new().unwrap();
    let outcome = run(job(
        &dir,
        "sleep 1000 & echo $! >> pids; \
         sh -c \"trap '' TERM; exec sleep 1000\" & echo $! >> pids; \
         exit 4",
    ))
    .await;
    // The leader's own result is kept, not that of the cleanup.
    assert_eq!(outcome, Outcome::Exited { code: 4 });
    let pids = pids_in(&pid_file(&dir), 2).await;
    for pid in pids {
        assert!(!is_running(pid), "leftover process {pid} survived");
    }
}

/// `setsid` takes a process out of the task's process group, where `killpg` cannot reach it;
/// the task's cgroup still holds it. (Needs cgroup v2 that vane may write to: root, as in CI.)
#[tokio::test]
async fn a_process_that_leaves_the_group_with_setsid_is_ended_with_the_task() {
    let dir = TempDir::new().unwrap();
    let outcome = run(job(
        &dir,
        "setsid sh -c 'echo $$ >> pids; exec sleep 1000' >/dev/null 2>&1 & \
         setsid sh -c \"trap '' TERM; echo \\$\\$ >> pids; exec sleep 1000\" >/dev/null 2>&1 & \
         while [ \"$(wc -l < pids 2>/dev/null)\" != 2 ]; do sleep 0.01; done",
    ))
    .await;
    assert_eq!(outcome, Outcome::Exited { code: 0 });
    let pids = pids_in(&pid_file(&dir), 2).await;
    for pid in &pids {
        assert!(!is_running(*pid), "process {pid} outlived its task");
    }
    let log = log(&dir);
    assert!(
        log.contains(
            "vane: the task left 2 processes running after its end, outside its process group"
        ),
        "the log does not say what was left: {log:?}"
    );
}

#[tokio::test]
async fn a_setsid_daemon_does_not_outlive_its_tasks_timeout() {
    let dir = TempDir::new().unwrap();
    let mut job = job(
        &dir,
        "setsid sh -c 'echo $$ >> pids; exec sleep 1000' >/dev/null 2>&1 & sleep 1000",
    );
    job.timeout = Some(Duration::from_millis(300));
    assert_eq!(run(job).await, Outcome::TimedOut);
    let pids = pids_in(&pid_file(&dir), 1).await;
    assert!(!is_running(pids[0]), "the daemon outlived the timeout");
}

#[tokio::test]
async fn start_time_identifies_the_process() {
    let dir = TempDir::new().unwrap();
    // The shell renames itself so that its stat line has a hostile `comm`.
    let launched = launch(job(
        &dir,
        "printf 'a) b (c) S 1' > /proc/$$/comm; echo renamed > pids; sleep 1000",
    ));
    pids_in(&pid_file(&dir), 0).await;
    let comm = fs::read_to_string(format!("/proc/{}/comm", launched.pid)).unwrap();
    assert_eq!(comm.trim_end(), "a) b (c) S 1");
    assert!(launched.start_time.is_some());
    assert_eq!(process_start_time(launched.pid), launched.start_time);
    launched.kill.kill();
    assert_eq!(outcome(launched.done).await, Outcome::Cancelled);
}

#[tokio::test]
async fn kill_group_if_same_checks_the_start_time() {
    let dir = TempDir::new().unwrap();
    let launched = launch(job(&dir, "sleep 1000 & echo $! > pids; wait"));
    let pids = pids_in(&pid_file(&dir), 1).await;
    let start_time = launched.start_time.expect("start time");

    assert!(!kill_group_if_same(launched.pid, start_time + 1, GRACE).await);
    assert!(is_running(launched.pid));
    assert!(is_running(pids[0]));

    assert!(kill_group_if_same(launched.pid, start_time, GRACE).await);
    assert!(!is_running(pids[0]));
    // SIGTERM came from outside the supervisor, so it is reported as a signal.
    assert_eq!(
        outcome(launched.done).await,
        Outcome::Signaled { signal: 15 }
    );
}

#[tokio::test]
async fn kill_group_if_same_escalates_to_sigkill() {
    let dir = TempDir::new().unwrap();
    let launched = launch(job(&dir, "trap '' TERM; echo ready > pids; sleep 1000"));
    pids_in(&pid_file(&dir), 0).await;
    let start_time = launched.start_time.expect("start time");
    assert!(kill_group_if_same(launched.pid, start_time, GRACE).await);
    assert_eq!(
        outcome(launched.done).await,
        Outcome::Signaled { signal: 9 }
    );
}

#[tokio::test]
async fn kill_group_if_same_leaves_other_processes_alone() {
    let me = std::process::id();
    let my_start = process_start_time(me).expect("own start time");
    assert!(!kill_group_if_same(me, my_start, GRACE).await);
    assert!(!kill_group_if_same(0, 0, GRACE).await);
    assert!(!kill_group_if_same(1, process_start_time(1).unwrap_or(0), GRACE).await);
    assert!(!kill_group_if_same(u32::MAX, 0, GRACE).await);
}

/// A held process exists but its command has not begun: nothing it would write is there
/// until the hold is released; then it runs as an unheld one would, stdin still empty.
#[tokio::test]
async fn a_held_command_begins_only_when_released() {
    let dir = TempDir::new().unwrap();
    let marker = dir.path().join("began");
    let command = format!("echo began > {}; echo \"stdin: $(cat)\"", marker.display());
    let (launched, hold) = ProcessExecutor
        .launch_held(job(&dir, &command))
        .expect("launch held");
    assert!(is_running(launched.pid));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!marker.exists(), "the command began before its release");
    hold.release();
    assert_eq!(outcome(launched.done).await, Outcome::Exited { code: 0 });
    assert!(marker.exists());
    assert_eq!(log(&dir), "stdin: \n");
}

/// The time limit counts from the release: a process held while its start commits (on a slow
/// database, for long) has not begun its command, and is not timed out for the wait.
#[tokio::test]
async fn a_held_commands_timeout_counts_from_its_release() {
    let dir = TempDir::new().unwrap();
    let mut job = job(&dir, "sleep 0.2; echo done");
    job.timeout = Some(Duration::from_millis(500));
    let (launched, hold) = ProcessExecutor.launch_held(job).expect("launch held");
    tokio::time::sleep(Duration::from_millis(800)).await;
    hold.release();
    assert_eq!(outcome(launched.done).await, Outcome::Exited { code: 0 });
    assert_eq!(log(&dir), "done\n");
}

/// A hold dropped without a release (the scheduler could not record the attempt, or died)
/// ends the process before its command begins.
#[tokio::test]
async fn a_dropped_hold_ends_the_process_before_its_command() {
    let dir = TempDir::new().unwrap();
    let marker = dir.path().join("began");
    let (launched, hold) = ProcessExecutor
        .launch_held(job(&dir, &format!("touch {}", marker.display())))
        .expect("launch held");
    drop(hold);
    assert_eq!(
        outcome(launched.done).await,
        Outcome::Exited {
            code: vane_exec::HELD_EXIT
        }
    );
    assert!(!marker.exists(), "the command ran without its release");
}

/// A job whose starter is alive leaves no mark: its status is learned from `wait`.
#[tokio::test]
async fn a_job_whose_starter_is_alive_leaves_no_exit_mark() {
    let dir = TempDir::new().unwrap();
    let job = job(&dir, "exit 3");
    let log = job.log_path.clone();
    assert_eq!(run(job).await, Outcome::Exited { code: 3 });
    assert_eq!(vane_exec::exit_mark(&log), None);
    assert!(!vane_exec::exit_mark_path(&log).exists());
}
