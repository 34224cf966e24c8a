//! The README's commands are the ones that work: the test command it gives is the one CI runs.

use std::path::PathBuf;

fn repo(path: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The commands of the first ```sh block after `heading`, without comments.
fn commands_after(readme: &str, heading: &str) -> Vec<String> {
    let at = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README has no `{heading}`"));
    let block = &readme[at..];
    let start = block.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = start + block[start..].find("```").expect("the block's end");
    block[start..end]
        .lines()
        .map(|l| l.split(" #").next().unwrap_or_default().trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// A fresh clone has no Chromium and maybe no PostgreSQL: the test command the README gives
/// must install what the tests need, and be exactly what CI runs.
#[test]
fn the_readme_test_command_is_what_ci_runs_and_installs_what_the_tests_need() {
    let readme = repo("README.md");
    let quick = commands_after(&readme, "## Quick start");
    let development = commands_after(&readme, "## Development");
    assert!(quick.contains(&"scripts/test".to_owned()), "{quick:?}");
    assert_eq!(development[0], "scripts/test", "{development:?}");
    let ci = repo(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == "scripts/test"),
        ".ci/run must run the README's test command:\n{ci}"
    );
    let script = repo("scripts/test");
    for needed in ["chromium chromium-driver", "postgresql", "iproute2"] {
        assert!(script.contains(needed), "scripts/test installs {needed}");
    }
    assert!(
        script.contains("exec cargo test --workspace --locked \"$@\""),
        "{script}"
    );
}

/// The lines of a `[section]` of a TOML file, up to the next one.
fn section<'a>(text: &'a str, header: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|l| l.trim() != header)
        .skip(1)
        .take_while(|l| !l.starts_with('['))
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// What `cargo install` builds is stripped (the README's Install section says how big), and a
/// `profiling` profile keeps the debug info for perf.
#[test]
fn the_release_build_is_stripped_and_a_profiling_build_keeps_debug_info() {
    let manifest = repo("Cargo.toml");
    assert_eq!(section(&manifest, "[profile.release]"), ["strip = true"]);
    let profiling = section(&manifest, "[profile.profiling]");
    assert!(
        profiling.contains(&"inherits = \"release\""),
        "{profiling:?}"
    );
    assert!(profiling.contains(&"debug = true"), "{profiling:?}");
    let readme = repo("README.md");
    assert!(readme.contains("cargo install --locked --path scheduler"));
    let version = section(&manifest, "[workspace.package]")
        .into_iter()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|v| v.split('"').next())
        .expect("a rust-version");
    assert!(
        readme.contains(&format!("Rust {version} or newer")),
        "{version}"
    );
}

/// From a folder inside the project, vane finds the project as git finds a repository: `vane
/// runs` reads its database and tasks run from its root. A command that only reads never
/// creates a database: outside a project, or with a mistyped `--db`, it says what it looked
/// for and where, and leaves nothing behind.
#[test]
fn vane_finds_its_project_from_a_subfolder_and_reads_never_create_a_database() {
    let p =
        crate::harness::Project::new().dag("demo", "[tasks.a]\ncommand = \"pwd > where.txt\"\n");
    std::fs::create_dir_all(p.path().join("dags/notes")).unwrap();
    let in_sub = |args: &[&str]| {
        p.command(args)
            .current_dir(p.path().join("dags/notes"))
            .output()
            .unwrap()
    };
    // Before any run: the DAGs are listed, and `vane runs` creates nothing.
    let listed = in_sub(&["dags"]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("demo"),
        "{listed:?}"
    );
    let runs = in_sub(&["runs"]);
    assert!(runs.status.success(), "{runs:?}");
    let said = String::from_utf8_lossy(&runs.stderr);
    let root = std::fs::canonicalize(p.path()).unwrap();
    assert!(
        said.contains("no vane database at")
            && said.contains(&format!("the project found at {}", root.display())),
        "{said}"
    );
    assert!(
        !p.path().join(".vane").exists(),
        "a read created the database"
    );
    assert!(!p.path().join("dags/notes/.vane").exists());

    // A run from the subfolder is the project's: recorded in its database, run from its root.
    assert!(in_sub(&["run", "demo"]).status.success());
    let ran_in = std::fs::read_to_string(p.path().join("where.txt")).unwrap();
    assert_eq!(std::fs::canonicalize(ran_in.trim()).unwrap(), root);
    let runs = in_sub(&["runs", "--json"]);
    assert!(runs.status.success(), "{runs:?}");
    assert!(String::from_utf8_lossy(&runs.stdout).contains("\"demo\""));
    assert!(!p.path().join("dags/notes/.vane").exists());

    // A mistyped --db finds nothing and says so, rather than making a new empty database.
    let typo = p
        .command(&["runs", "--db", ".vane/vnae.db"])
        .output()
        .unwrap();
    assert!(typo.status.success(), "{typo:?}");
    assert!(
        !String::from_utf8_lossy(&typo.stdout).contains("demo"),
        "{typo:?}"
    );
    assert!(
        String::from_utf8_lossy(&typo.stderr).contains("no vane database at .vane/vnae.db"),
        "{typo:?}"
    );
    assert!(!p.path().join(".vane/vnae.db").exists());
}

/// Each kind of failure has its own exit code, as the README's table says, so a script can
/// tell a typo from a missing run from a database it cannot reach.
#[test]
fn exit_codes_tell_kinds_of_failure_apart() {
    let p = crate::harness::Project::new().dag(
        "demo",
        "[tasks.a]\ncommand = \"true\"\n[tasks.b]\ncommand = \"exit 3\"\n",
    );
    let code = |args: &[&str]| p.command(args).output().unwrap().status.code();
    assert_eq!(
        code(&["run", "demo", "--date", "2026-01-01"]),
        Some(1),
        "a run that failed"
    );
    assert_eq!(
        code(&["nonsense"]),
        Some(2),
        "a command line clap cannot parse"
    );
    assert_eq!(code(&["show", "99"]), Some(3), "a run that does not exist");
    assert_eq!(code(&["run", "nope"]), Some(3), "a DAG that does not exist");
    assert_eq!(
        code(&["run", "demo", "--date", "yesterday-ish"]),
        Some(4),
        "a bad date"
    );
    assert_eq!(
        code(&["run", "demo", "--param", "nope=1"]),
        Some(4),
        "an unknown param"
    );
    assert_eq!(
        code(&["run", "demo", "--date", "2026-01-01"]),
        Some(5),
        "the DAG has a run for that date already"
    );
    assert_eq!(
        code(&["run", "demo", "--db", "/proc/no-such-folder/vane.db"]),
        Some(6),
        "a database vane cannot open"
    );
    let readme = repo("README.md");
    for row in [
        "| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 4 |", "| 5 |", "| 6 |", "| 130 |",
    ] {
        assert!(readme.contains(row), "the README's exit codes lack {row}");
    }
}

/// vane's log lines are coloured on a terminal, not when NO_COLOR is set (no-color.org), never
/// into a pipe, and as `--color` says when it is given.
#[test]
fn colour_follows_the_terminal_no_color_and_the_color_flag() {
    let p = crate::harness::Project::new().dag("demo", "[tasks.a]\ncommand = \"true\"\n");
    let esc = |bytes: &[u8]| bytes.contains(&0x1b);
    let piped = |args: &[&str]| p.command(args).env("VANE_LOG", "info").output().unwrap();
    assert!(!esc(&piped(&["run", "demo", "--date", "2026-01-01"]).stderr));
    assert!(esc(&piped(&[
        "run",
        "demo",
        "--date",
        "2026-01-02",
        "--color",
        "always"
    ])
    .stderr));
    // On a terminal (util-linux's `script` gives the command a pseudo-terminal).
    let on_terminal = |date: &str, no_color: bool| {
        let line = format!("{} run demo --date {date}", crate::harness::VANE);
        let mut command = std::process::Command::new("script");
        command
            .args(["-qec", &line, "/dev/null"])
            .current_dir(p.path())
            .env("VANE_LOG", "info")
            .env_remove("VANE_DB")
            .env_remove("VANE_DAGS");
        if no_color {
            command.env("NO_COLOR", "1");
        } else {
            command.env_remove("NO_COLOR");
        }
        let out = command.output().expect("run `script` (util-linux)");
        assert!(out.status.success(), "{out:?}");
        out.stdout
    };
    assert!(esc(&on_terminal("2026-01-03", false)));
    assert!(!esc(&on_terminal("2026-01-04", true)));
}

/// The README names the fields of `vane alerts --stats --json` as the JSON does.
#[test]
fn the_readme_names_the_alert_statistics_as_the_json_does() {
    let p = crate::harness::Project::new().dag("boom", "[tasks.a]\ncommand = \"exit 3\"\n");
    p.write("vane.toml", "[[alerts.rules]]\non = \"run_failed\"\n");
    p.vane(&["run", "boom"]).code(1);
    p.vane(&["alerts", "--evaluate"]).success();
    let stats = p.vane(&["alerts", "--stats", "--json"]).success().json();
    let first = stats[0].as_object().unwrap_or_else(|| panic!("{stats:#}"));
    let readme = repo("README.md");
    let row = readme
        .lines()
        .find(|l| l.starts_with("| `vane alerts --stats"))
        .expect("the README's row for vane alerts --stats");
    for key in ["fired", "occurrences", "real", "noise", "precision"] {
        assert!(first.contains_key(key), "{key}: {stats:#}");
        assert!(row.contains(key), "the README's row lacks {key}: {row}");
    }
}

/// Each systemd unit the README gives is one systemd accepts (`systemd-analyze verify`), and
/// hardened: `systemd-analyze security` rates it OK (exposure at most 2.0 of 10; 9.2 "UNSAFE"
/// without the hardening directives).
#[test]
fn the_readmes_systemd_units_verify_and_are_hardened() {
    let readme = repo("README.md");
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for block in readme.split("```ini\n").skip(1) {
        let text = &block[..block.find("```").expect("the block's end")];
        let Some(name) = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# /etc/systemd/system/"))
        else {
            continue;
        };
        // The binary where this test built it: verify checks that ExecStart exists.
        let unit = text.replace("/usr/local/bin/vane", crate::harness::VANE);
        std::fs::write(dir.path().join(name), unit).unwrap();
        units.push(name.to_owned());
    }
    assert_eq!(
        units,
        [
            "vane-scheduler.service",
            "vane-serve.service",
            "vane-agent.service"
        ]
    );
    let analyze = |args: &[&str]| {
        std::process::Command::new("systemd-analyze")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run systemd-analyze ({e}): install Debian's `systemd` package")
            })
    };
    for unit in &units {
        let path = format!("./{unit}");
        let verified = analyze(&["verify", &path]);
        assert!(
            verified.status.success() && verified.stderr.is_empty(),
            "{unit}: {}",
            String::from_utf8_lossy(&verified.stderr)
        );
        let rated = analyze(&["security", "--offline=true", &path]);
        let text = String::from_utf8_lossy(&rated.stdout);
        let score: f64 = text
            .lines()
            .find_map(|l| l.split("Overall exposure level for ").nth(1))
            .and_then(|rest| rest.split(": ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{unit}: no exposure level in:\n{text}"));
        assert!(score <= 2.0, "{unit} is rated {score}:\n{text}");
    }
}

/// Shell completion and man pages come from the same command line as `--help`, so they name
/// every command there is.
#[test]
fn completions_and_man_pages_cover_every_command() {
    let p = crate::harness::Project::new();
    let bash = p.vane(&["completions", "bash"]).success().stdout;
    assert!(
        bash.contains("_vane()") && bash.contains("complete -F _vane"),
        "{bash}"
    );
    for command in ["ticks", "logs", "agents", "completions"] {
        assert!(bash.contains(command), "bash completion lacks {command}");
    }
    let zsh = p.vane(&["completions", "zsh"]).success().stdout;
    assert!(zsh.starts_with("#compdef vane"), "{zsh}");
    let fish = p.vane(&["completions", "fish"]).success().stdout;
    assert!(fish.contains("complete -c vane"), "{fish}");
    p.vane(&["completions", "tcsh"])
        .code(2)
        .stderr_contains("possible values");

    let man = p.vane(&["man"]).success().stdout;
    assert!(man.contains(".TH vane 1"), "{man}");
    assert!(
        man.contains("vane\\-ticks"),
        "the page lists the commands:\n{man}"
    );
    let dir = p.root().join("man1");
    p.vane(&["man", "--dir", dir.to_str().unwrap()])
        .success()
        .stderr_contains("man pages to");
    let run = std::fs::read_to_string(dir.join("vane-run.1")).unwrap();
    assert!(
        run.contains(".TH vane-run 1") && run.contains("\\-\\-param"),
        "{run}"
    );
    assert!(dir.join("vane.1").exists());
    assert!(
        !dir.join("vane-exec-builtin.1").exists(),
        "hidden commands get no page"
    );
}
