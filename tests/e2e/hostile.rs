//! Hostile input: what once took vane down must now affect at most itself.

use std::time::Duration;

use crate::harness::Project;

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
