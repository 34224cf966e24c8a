//! Hostile input: what once took vane down must now affect at most itself.

use std::time::Duration;

use crate::harness::{Project, wait_for};

const PATIENCE: Duration = Duration::from_secs(60);

/// `vane trigger DAG --date=-0001-01-01` was stored as a timestamp vane could not read back;
/// from then on no queued run of any DAG started and `vane runs` failed. Dates outside what
/// vane keeps are refused at the door, by the command line and the API alike; and a row that
/// cannot be read (here written as an older vane would have) stops only itself.
#[test]
fn a_date_vane_cannot_read_back_is_refused_and_an_unreadable_run_stops_only_itself() {
    let p = Project::new()
        .dag("first", "[tasks.a]\ncommand = \"true\"\n")
        .dag("second", "[tasks.b]\ncommand = \"echo ran\"\n");
    for date in ["-0001-01-01", "0999-12-31", "1969-12-31T23:59:59Z"] {
        p.vane(&["trigger", "first", &format!("--date={date}")])
            .code(4)
            .stderr_contains("from 1970-01-01 to 9999-12-31");
    }
    assert!(p.runs().is_empty(), "nothing was recorded");

    // A run whose logical date cannot be read back, as an older vane let in.
    p.vane(&["trigger", "first", "--date=2026-01-01"]).success();
    p.sql("UPDATE runs SET logical_date = '-0001-01-01T00:00:00.000000Z' WHERE id = 1");
    p.vane(&["trigger", "second", "--date=2026-01-02"])
        .success();
    let runs = p.runs();
    assert_eq!(runs.len(), 1, "the readable run is listed: {runs:?}");
    assert_eq!(runs[0]["dag_id"], "second");
    p.vane(&["show", "1"])
        .code(6)
        .stderr_contains("cannot read: timestamp `-0001-01-01");

    let mut daemon = p.scheduler(&[]);
    daemon.wait_for("the other DAG's run to finish", PATIENCE, || {
        let show = p.show(2);
        (show["state"] == "success").then_some(())
    });
    assert!(
        daemon.is_running(),
        "the scheduler goes on: {}",
        daemon.log()
    );
}

/// `GET …/logs` read the whole log into memory (six readers of a 200 MB log took the server
/// to 1.19 GB). It is sent a piece at a time now; what arrives is still the whole log, as
/// `vane logs` prints it.
#[test]
fn a_log_many_pieces_long_arrives_whole_through_the_api_and_the_command_line() {
    use std::io::{Read, Write};
    let p = Project::new().dag(
        "loud",
        "[tasks.talk]\ncommand = \"head -c 300000 /dev/zero | tr '\\\\0' x; echo; echo END\"\n",
    );
    p.vane(&["run", "loud"]).success();
    let expected = format!("{}\nEND\n", "x".repeat(300_000));
    let cli = p.vane(&["logs", "1", "talk"]).success();
    assert_eq!(cli.stdout.len(), expected.len());
    assert!(cli.stdout.ends_with("x\nEND\n"));

    let s = p.serve("t0ken");
    let mut stream = std::net::TcpStream::connect(&s.addr).unwrap();
    write!(
        stream,
        "GET /api/runs/1/tasks/talk/logs HTTP/1.1\r\nHost: {}\r\n\r\n",
        s.addr
    )
    .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, expected);
}

/// A tmpfs mounted over the project's state folder, unmounted however the test ends.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: &std::path::Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("mount (the tests run as root)");
        assert!(status.success(), "mount a tmpfs at {}", at.display());
        Self(at.to_owned())
    }

    /// Writes until the disk has no room left.
    fn fill(&self) {
        let _ = std::process::Command::new("dd")
            .args(["if=/dev/zero", "bs=64k"])
            .arg(format!("of={}", self.0.join("filler").display()))
            .stderr(std::process::Stdio::null())
            .status();
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).unwrap();
    }

    /// Remounts the disk read-only (`ro`) or read-write, as an operator or a failing disk does.
    fn remount(&self, options: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.0)
            .status()
            .expect("mount -o remount");
        assert!(status.success(), "remount {options} {}", self.0.display());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// With the database's disk full, a task that exited 0 was recorded failed ("scheduler
/// lost") and its downstream never ran. Its end is now held and written once there is room:
/// the task succeeded, once, and the run goes on to the end.
#[test]
fn a_task_that_succeeds_while_the_disk_is_full_is_recorded_succeeded_once_there_is_room() {
    let p = Project::new();
    let disk = SmallDisk::mount(&p.path().join(".vane"), "8m");
    let (started, go) = (p.path().join("started"), p.path().join("go"));
    p.write_dag(
        "tight",
        &format!(
            "[tasks.first]\ncommand = 'touch {}; while [ ! -f {} ]; do sleep 0.05; done'\n\n[tasks.second]\ncommand = \"echo after\"\ndepends_on = [\"first\"]\n",
            started.display(),
            go.display()
        ),
    );
    let mut run = p
        .command(&["run", "tight"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start vane run");
    wait_for("the first task to start", PATIENCE, || {
        started.exists().then_some(())
    });
    disk.fill();
    std::fs::write(&go, "").unwrap();
    // The task ends while nothing can be written; vane holds its end and waits.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        run.try_wait().unwrap().is_none(),
        "vane run gave up while the disk was full"
    );
    disk.free();
    let status = wait_for("the run to end", PATIENCE, || run.try_wait().unwrap());
    let mut stderr = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("The database cannot be written"),
        "it said what was wrong: {stderr}"
    );
    let show = p.show(1);
    assert_eq!(show["state"], "success", "{show:#}");
    for task in ["first", "second"] {
        let attempts = crate::harness::attempts(&show, task);
        assert_eq!(attempts.len(), 1, "{task}: {show:#}");
        assert_eq!(attempts[0]["state"], "success", "{task}: {show:#}");
    }
}

/// With the database's disk full, the scheduler logged about 400 errors a second at 15% of a
/// core, and the message that said what was wrong scrolled away. Now each problem is said once,
/// passes back off (to at most one every 30 s), and scheduling resumes by itself when the disk
/// has room again.
#[test]
fn a_full_disk_is_said_once_and_the_scheduler_backs_off_then_resumes_by_itself() {
    let p = Project::new();
    let disk = SmallDisk::mount(&p.path().join(".vane"), "8m");
    p.write_dag(
        "tick",
        "[dag]\nschedule = \"*/1 * * * * *\"\n\n[tasks.a]\ncommand = \"true\"\n",
    );
    let mut daemon = p.scheduler(&[]);
    let succeeded = |p: &Project| {
        p.vane(&["runs", "tick", "--json"])
            .success()
            .json()
            .as_array()
            .map_or(0, |runs| {
                runs.iter().filter(|r| r["state"] == "success").count()
            })
    };
    daemon.wait_for("a scheduled run to succeed", PATIENCE, || {
        (succeeded(&p) >= 1).then_some(())
    });
    disk.fill();
    let before = daemon.log().lines().count();
    std::thread::sleep(Duration::from_secs(5));
    let log = daemon.log();
    let during: Vec<&str> = log.lines().skip(before).collect();
    let said = during
        .iter()
        .filter(|l| l.contains("A scheduler pass failed"))
        .count();
    assert!(
        (1..=6).contains(&said),
        "each problem is said once ({said} times):\n{}",
        during.join("\n")
    );
    assert!(
        during.len() < 60,
        "{} log lines in 5 s of a full disk:\n{}",
        during.len(),
        during.join("\n")
    );
    assert!(daemon.is_running(), "the scheduler gave up: {log}");
    disk.free();
    daemon.wait_for_log(&["Scheduler passes succeed again"], PATIENCE);
    let after = succeeded(&p);
    daemon.wait_for("scheduled runs to succeed again", PATIENCE, || {
        (succeeded(&p) > after).then_some(())
    });
    assert_eq!(daemon.terminate(PATIENCE), Some(0), "{}", daemon.log());
}

/// With a read-only database the scheduler spun as with a full disk, and since SQLite opens such
/// a file read-only for good, it could never have gone on. It now stops at once, saying what is
/// wrong and what to do.
#[test]
fn a_scheduler_started_on_a_read_only_database_says_so_and_stops() {
    let p = Project::new();
    let disk = SmallDisk::mount(&p.path().join(".vane"), "16m");
    p.write_dag(
        "tick",
        "[dag]\nschedule = \"*/1 * * * * *\"\n\n[tasks.a]\ncommand = \"true\"\n",
    );
    let mut daemon = p.scheduler(&[]);
    daemon.wait_for("a scheduled run to succeed", PATIENCE, || {
        p.vane(&["runs", "tick", "--json"])
            .success()
            .json()
            .as_array()
            .is_some_and(|runs| runs.iter().any(|r| r["state"] == "success"))
            .then_some(())
    });
    assert_eq!(daemon.terminate(PATIENCE), Some(0), "{}", daemon.log());
    disk.remount("ro");
    let mut again = p.scheduler(&[]);
    let code = again.wait(PATIENCE);
    let log = again.log();
    assert_ne!(code, Some(0), "{log}");
    assert!(
        log.contains(
            "the scheduler does not start on a database it cannot write; make it writable"
        ),
        "{log}"
    );
    assert!(log.lines().count() < 10, "{log}");
    // Readers still read it.
    p.vane(&["runs", "tick"]).success();
    disk.remount("rw");
}
