//! DAG files built to hurt: each once crashed `vane validate` (and the scheduler loading it),
//! or took it tens of seconds; each is now an error report like any other.

fn tasks(count: usize, depends_on: impl Fn(usize) -> String) -> String {
    (0..count)
        .map(|i| {
            format!(
                "[tasks.t{i}]\ncommand = \"true\"\ndepends_on = [{}]\n",
                depends_on(i)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn messages(source: &str) -> Vec<String> {
    vane_dag::parse_dag(source, "hostile")
        .diagnostics
        .iter()
        .map(|d| d.message.clone())
        .collect()
}

/// A cycle through 100,000 tasks overflowed the stack (the cycle search recursed once per
/// task), killing the scheduler, which then crash-looped on the same file. Then its one
/// message named all 100,000 tasks, 1.2 MB on one line.
#[test]
fn a_cycle_through_100000_tasks_is_reported_not_a_stack_overflow() {
    let n = 100_000;
    let found = messages(&tasks(n, |i| format!("\"t{}\"", (i + 1) % n)));
    assert_eq!(found.len(), 1, "{:?}", &found[..found.len().min(3)]);
    let first: Vec<String> = (0..10).map(|i| format!("`t{i}`")).collect();
    assert_eq!(
        found[0],
        format!(
            "dependency cycle: {} -> … and 99,990 more, back to `t0`",
            first.join(" -> ")
        ),
    );
}

/// 10,000 misspelt dependencies each searched 10,000 tasks for a "did you mean", and each
/// hint listed all of them: 36 s. A file shows its first 200 problems and says how many more.
#[test]
fn ten_thousand_misspelt_dependencies_show_the_first_problems_and_count_the_rest() {
    let found = messages(&tasks(10_000, |i| format!("\"x{i}\"")));
    assert_eq!(found.len(), 201);
    assert_eq!(
        found[0],
        "task `t0` depends on `x0`, which is not a task of this DAG"
    );
    assert_eq!(found[200], "... and 9800 more problems in this file");
    let parsed = vane_dag::parse_dag(
        "[tasks.train]\ncommand = \"true\"\n[tasks.report]\ncommand = \"true\"\ndepends_on = [\"trian\"]\n",
        "hostile",
    );
    let hint = parsed.diagnostics[0].hint.as_deref().unwrap_or_default();
    assert_eq!(
        hint, "did you mean `train`?",
        "a small file still gets its hint"
    );
}

/// 100,000 tasks each depending on itself: each a cycle, each an error; over 60 s before.
#[test]
fn a_hundred_thousand_self_dependencies_are_counted_not_each_rendered() {
    let found = messages(&tasks(100_000, |i| format!("\"t{i}\"")));
    assert_eq!(found.len(), 201);
    assert_eq!(found[0], "task `t0` depends on itself");
    assert_eq!(found[200], "... and 99800 more problems in this file");
}

/// One task with 100,000 upstream tasks: the repeated-entry check scanned the list for each
/// entry (11 s). It is a valid DAG.
#[test]
fn one_task_with_100000_upstream_tasks_is_valid() {
    let n = 100_000;
    let mut source: String = (0..n)
        .map(|i| format!("[tasks.t{i}]\ncommand = \"true\"\n"))
        .collect();
    let all: Vec<String> = (0..n).map(|i| format!("\"t{i}\"")).collect();
    source.push_str(&format!(
        "[tasks.last]\ncommand = \"true\"\ndepends_on = [{}, \"t0\"]\n",
        all.join(", ")
    ));
    let parsed = vane_dag::parse_dag(&source, "hostile");
    assert_eq!(parsed.dag.map(|d| d.tasks.len()), Some(n + 1));
    let repeated: Vec<_> = parsed.diagnostics.iter().map(|d| &d.message).collect();
    assert_eq!(repeated, ["`t0` is listed twice in `depends_on`"]);
}

/// A 400 KB time zone name took 7 s of "did you mean" search; nobody mistypes that much.
#[test]
fn a_time_zone_of_400_kb_gets_no_guess() {
    let zone = "Europe/Pari".repeat(40_000);
    let source = format!("[dag]\ntimezone = \"{zone}\"\n[tasks.a]\ncommand = \"true\"\n");
    let parsed = vane_dag::parse_dag(&source, "hostile");
    let d = &parsed.diagnostics[0];
    assert!(d.message.starts_with("unknown time zone"));
    assert_eq!(
        d.hint.as_deref(),
        Some("use an IANA name such as `UTC`, `Europe/Paris` or `America/New_York`")
    );
    // A short typo still gets its guess.
    let parsed = vane_dag::parse_dag(
        "[dag]\ntimezone = \"Europe/Pari\"\n[tasks.a]\ncommand = \"true\"\n",
        "hostile",
    );
    assert_eq!(
        parsed.diagnostics[0].hint.as_deref(),
        Some("did you mean `Europe/Paris`?")
    );
}
