//! The run state machine: given what happened, decide what happens next.
//!
//! It owns no processes, clock or database: the [`crate::Engine`] feeds it events with the
//! current time and carries out the [`Action`]s it returns, so every scheduling rule is tested
//! here with plain values.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use vane_dag::{Dag, RetryPolicy, TriggerRule};
use vane_store::{RunState, TaskState};

/// What the engine must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Record the new attempt, then start its process.
    Launch { task: usize, attempt: u32 },
    /// Record a task's new state.
    SetState {
        task: usize,
        state: TaskState,
        reason: Option<String>,
    },
    /// Kill the task's running process.
    Kill { task: usize },
}

/// What the record says about one task when a run is resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub state: TaskState,
    /// Attempts made so far; the next one is numbered after them.
    pub attempts: u32,
    /// Attempts made before the task was last cleared; its retry budget starts again there.
    pub retry_base: u32,
    /// For a task waiting for a retry after an attempt that failed by itself: how long ago it
    /// failed. The retry then waits what is left of its delay, as it would have had no vane
    /// stopped meanwhile. `None` (never ran, or lost with its vane process, or killed by a
    /// shutdown) retries at once.
    pub failed_ago: Option<Duration>,
}

impl Recorded {
    /// A task that never ran.
    pub const NEW: Recorded = Recorded {
        state: TaskState::Queued,
        attempts: 0,
        retry_base: 0,
        failed_ago: None,
    };
}

/// How an attempt ended, as far as scheduling is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Success,
    /// Failed; retried if the policy allows.
    Failed,
    /// Failed in a way a retry cannot fix (the run is being stopped).
    Stopped,
    /// Failed on a verdict (a failed check or gate, a rejection): final, never retried.
    Verdict,
    /// The task ended itself `skipped`: downstream tasks follow their trigger rules.
    Skipped,
    /// A person stopped this task (`vane stop --task`): failed, never retried.
    Killed,
}

/// How the dependencies of one task have ended so far.
#[derive(Debug, Default, Clone, Copy)]
struct Upstream {
    total: usize,
    success: usize,
    /// Ran and failed.
    failed: usize,
    /// Could not run because something further up failed.
    upstream_failed: usize,
    skipped: usize,
}

impl Upstream {
    fn done(&self) -> usize {
        self.success + self.failed + self.upstream_failed + self.skipped
    }

    fn count(&mut self, state: TaskState) {
        match state {
            TaskState::Success => self.success += 1,
            TaskState::Failed => self.failed += 1,
            TaskState::UpstreamFailed => self.upstream_failed += 1,
            _ => self.skipped += 1,
        }
    }
}

/// What a task's trigger rule says, given its dependencies so far.
enum Verdict {
    Wait,
    Run,
    /// The rule can no longer be met because something upstream failed or was skipped.
    UpstreamFailed,
    /// The rule waited for a failure that did not happen.
    Skip,
}

/// Failure-triggered rules (`one_failed`, `all_failed`) react to dependencies that ran and
/// failed; a dependency that could not run (`upstream_failed`) does not count, so a fallback
/// wired to "training failed" does not fire because validation stopped the run earlier.
fn verdict(rule: TriggerRule, up: Upstream) -> Verdict {
    let all_done = up.done() == up.total;
    let broken = up.failed + up.upstream_failed;
    match rule {
        TriggerRule::AllSuccess if broken > 0 => Verdict::UpstreamFailed,
        TriggerRule::AllSuccess if up.skipped > 0 => Verdict::Skip,
        TriggerRule::AllSuccess | TriggerRule::AllDone if all_done => Verdict::Run,
        TriggerRule::AllFailed if up.done() > up.failed => Verdict::Skip,
        TriggerRule::AllFailed if all_done => Verdict::Run,
        TriggerRule::OneFailed if up.failed > 0 => Verdict::Run,
        TriggerRule::OneFailed if all_done => Verdict::Skip,
        TriggerRule::OneSuccess if up.success > 0 => Verdict::Run,
        TriggerRule::OneSuccess if all_done && broken > 0 => Verdict::UpstreamFailed,
        TriggerRule::OneSuccess if all_done => Verdict::Skip,
        TriggerRule::NoneFailed if broken > 0 => Verdict::UpstreamFailed,
        TriggerRule::NoneFailed if all_done => Verdict::Run,
        _ => Verdict::Wait,
    }
}

#[derive(Debug)]
struct Slot {
    id: String,
    state: TaskState,
    attempts: u32,
    /// Attempts made before the task was last cleared; the retry budget counts from here.
    retry_base: u32,
    retry: RetryPolicy,
    rule: TriggerRule,
    /// A waiting sensor holds no worker slot.
    sensor: bool,
    /// Higher starts first among ready tasks.
    priority: i64,
    upstream: Upstream,
    downstream: Vec<usize>,
    retry_at: Option<Instant>,
}

/// The state of one DAG run's tasks.
#[derive(Debug)]
pub struct RunMachine {
    slots: Vec<Slot>,
    max_active: usize,
    /// Tasks running, sensors included.
    running: usize,
    /// Sensors among them.
    sensing: usize,
    /// Tasks whose trigger rule is met, in the order it was met.
    ready: VecDeque<usize>,
    /// Retries by due time; an entry is stale when the slot's `retry_at` no longer matches.
    retries: BinaryHeap<Reverse<(Instant, usize)>>,
    cancelled: bool,
    /// Start nothing new; what runs finishes.
    draining: bool,
}

impl RunMachine {
    pub fn new(dag: &Dag, max_active: usize) -> Self {
        let mut slots: Vec<Slot> = dag
            .tasks
            .iter()
            .map(|t| Slot {
                id: t.id.clone(),
                state: TaskState::Queued,
                attempts: 0,
                retry_base: 0,
                retry: t.retry,
                rule: t.trigger_rule,
                sensor: t.sensor.is_some(),
                priority: t.priority,
                upstream: Upstream {
                    total: t.depends_on.len(),
                    ..Upstream::default()
                },
                downstream: Vec::new(),
                retry_at: None,
            })
            .collect();
        for (i, task) in dag.tasks.iter().enumerate() {
            for &dep in &task.depends_on {
                slots[dep].downstream.push(i);
            }
        }
        let ready = (0..slots.len())
            .filter(|&i| slots[i].upstream.total == 0)
            .collect();
        Self {
            slots,
            max_active: max_active.max(1),
            running: 0,
            sensing: 0,
            ready,
            retries: BinaryHeap::new(),
            cancelled: false,
            draining: false,
        }
    }

    /// Picks a run up where its record left off: tasks already finished keep their state and
    /// count toward their downstream tasks' trigger rules; `queued` tasks (never started, or
    /// cleared for a rerun) start when their rules allow. Attempt numbers continue from the
    /// record. A task recorded `running` must have had its attempt closed by the caller; it is
    /// treated as `queued`.
    pub fn resume(
        dag: &Dag,
        max_active: usize,
        recorded: &[Recorded],
        now: Instant,
    ) -> (Self, Vec<Action>) {
        let mut machine = Self::new(dag, max_active);
        machine.ready.clear();
        let mut actions = Vec::new();
        for (i, r) in recorded.iter().enumerate() {
            let state = r.state;
            machine.slots[i].attempts = r.attempts;
            machine.slots[i].retry_base = r.retry_base.min(r.attempts);
            if state.is_finished() {
                machine.slots[i].state = state;
                for d in machine.slots[i].downstream.clone() {
                    machine.slots[d].upstream.count(state);
                }
            }
        }
        for i in 0..machine.slots.len() {
            if machine.slots[i].state != TaskState::Queued {
                continue;
            }
            let slot = &machine.slots[i];
            let tries = slot.attempts.saturating_sub(slot.retry_base);
            let left = recorded
                .get(i)
                .and_then(|r| r.failed_ago)
                .filter(|_| tries > 0)
                .map(|ago| slot.retry.delay_after(tries).saturating_sub(ago))
                .filter(|left| !left.is_zero());
            match verdict(slot.rule, slot.upstream) {
                Verdict::Run => match left {
                    Some(left) => {
                        machine.slots[i].retry_at = Some(now + left);
                        machine.retries.push(Reverse((now + left, i)));
                    }
                    None => machine.ready.push_back(i),
                },
                Verdict::Wait => {}
                Verdict::UpstreamFailed => machine.settle(
                    i,
                    TaskState::UpstreamFailed,
                    Some("an upstream task had already failed".into()),
                    &mut actions,
                ),
                Verdict::Skip => machine.settle(
                    i,
                    TaskState::Skipped,
                    Some(format!("trigger rule `{}` not met", slot.rule.name())),
                    &mut actions,
                ),
            }
        }
        (machine, actions)
    }

    pub fn state(&self, task: usize) -> TaskState {
        self.slots[task].state
    }

    pub fn attempts(&self, task: usize) -> u32 {
        self.slots[task].attempts
    }

    /// Starts what can start now.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        self.fill(now, &mut actions);
        actions
    }

    /// A task's current attempt ended.
    pub fn finished(&mut self, task: usize, finish: Finish, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        debug_assert_eq!(self.slots[task].state, TaskState::Running);
        self.running -= 1;
        if self.slots[task].sensor {
            self.sensing -= 1;
        }
        let slot = &mut self.slots[task];
        match finish {
            Finish::Success => self.settle(task, TaskState::Success, None, &mut actions),
            Finish::Skipped => {
                let reason = "the task skipped itself".to_owned();
                self.settle(task, TaskState::Skipped, Some(reason), &mut actions);
            }
            Finish::Failed
                if !self.cancelled && slot.attempts - slot.retry_base <= slot.retry.retries =>
            {
                let tries = slot.attempts - slot.retry_base;
                let delay = slot.retry.delay_after(tries);
                slot.state = TaskState::Queued;
                slot.retry_at = Some(now + delay);
                self.retries.push(Reverse((now + delay, task)));
                let reason = format!(
                    "attempt {} failed; retry {tries} of {} in {}",
                    slot.attempts,
                    slot.retry.retries,
                    vane_dag::format_duration(delay)
                );
                actions.push(set(task, TaskState::Queued, Some(reason)));
            }
            // Killed while the run is put aside: it runs again when the run resumes.
            Finish::Stopped if self.draining && !self.cancelled => {
                slot.state = TaskState::Queued;
                let reason = "killed when the scheduler stopped; runs again when the run resumes";
                actions.push(set(task, TaskState::Queued, Some(reason.into())));
            }
            Finish::Failed | Finish::Stopped | Finish::Verdict | Finish::Killed => {
                let reason = if finish == Finish::Stopped || self.cancelled {
                    Some("the run was stopped".to_owned())
                } else if finish == Finish::Killed {
                    Some("stopped by a person; not retried".to_owned())
                } else if finish == Finish::Verdict {
                    Some("failed on a verdict (a failed check or gate); not retried".to_owned())
                } else if slot.retry.retries > 0 {
                    Some(format!(
                        "failed after {} attempts",
                        slot.attempts - slot.retry_base
                    ))
                } else {
                    None
                };
                self.settle(task, TaskState::Failed, reason, &mut actions);
            }
        }
        self.fill(now, &mut actions);
        actions
    }

    /// Time has passed: start retries that are due.
    pub fn wake(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        self.fill(now, &mut actions);
        actions
    }

    /// When the next retry is due, if any waits.
    pub fn next_wake(&self) -> Option<Instant> {
        self.retries
            .iter()
            .filter(|Reverse((at, task))| self.slots[*task].retry_at == Some(*at))
            .map(|Reverse((at, _))| *at)
            .min()
    }

    /// Start nothing new from now on; tasks that run may finish. The run is then left
    /// unfinished, to be resumed later.
    ///
    /// Sensors waiting for their condition are stopped at once (they are requeued): waiting
    /// is not work worth finishing.
    pub fn drain(&mut self) -> Vec<Action> {
        self.draining = true;
        self.kill_where(|slot| slot.sensor)
    }

    /// Kill every running task but leave the run resumable: killed tasks go back to `queued`.
    /// For the end of a drain's grace period.
    pub fn kill_running(&mut self) -> Vec<Action> {
        self.draining = true;
        self.kill_where(|_| true)
    }

    fn kill_where(&self, which: impl Fn(&Slot) -> bool) -> Vec<Action> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.state == TaskState::Running && which(slot))
            .map(|(task, _)| Action::Kill { task })
            .collect()
    }

    /// Draining and nothing runs any more: the run can be put aside.
    pub fn drained(&self) -> bool {
        self.draining && self.running == 0 && self.outcome().is_none()
    }

    /// Stop the run: kill what runs, skip what has not started, fail what waits for a retry.
    pub fn cancel(&mut self) -> Vec<Action> {
        self.cancelled = true;
        self.ready.clear();
        let mut actions = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            match slot.state {
                TaskState::Running => actions.push(Action::Kill { task: i }),
                // A task waiting for a retry has failed: its attempt did start, so `skipped`
                // ("stopped before it started") would contradict its failed attempt.
                TaskState::Queued if slot.attempts > slot.retry_base => {
                    slot.state = TaskState::Failed;
                    slot.retry_at = None;
                    actions.push(set(
                        i,
                        TaskState::Failed,
                        Some(format!(
                            "attempt {} failed; the run was stopped before its retry",
                            slot.attempts
                        )),
                    ));
                }
                TaskState::Queued => {
                    slot.state = TaskState::Skipped;
                    slot.retry_at = None;
                    actions.push(set(
                        i,
                        TaskState::Skipped,
                        Some("the run was stopped before it started".into()),
                    ));
                }
                _ => {}
            }
        }
        actions
    }

    /// The run's final state once every task has finished: `success` unless a task failed,
    /// ended `upstream_failed`, or the run was stopped.
    pub fn outcome(&self) -> Option<RunState> {
        if !self.slots.iter().all(|s| s.state.is_finished()) {
            return None;
        }
        let ok = !self.cancelled
            && self
                .slots
                .iter()
                .all(|s| matches!(s.state, TaskState::Success | TaskState::Skipped));
        Some(if ok {
            RunState::Success
        } else {
            RunState::Failed
        })
    }

    /// Puts a task in a final state and lets its downstream tasks' trigger rules decide.
    fn settle(
        &mut self,
        task: usize,
        state: TaskState,
        reason: Option<String>,
        actions: &mut Vec<Action>,
    ) {
        let mut pending = vec![(task, state, reason)];
        while let Some((task, state, reason)) = pending.pop() {
            let slot = &mut self.slots[task];
            slot.state = state;
            slot.retry_at = None;
            actions.push(set(task, state, reason));
            for d in self.slots[task].downstream.clone() {
                let down = &mut self.slots[d];
                down.upstream.count(state);
                if down.state != TaskState::Queued || self.ready.contains(&d) {
                    continue;
                }
                let verdict = verdict(down.rule, down.upstream);
                let rule = down.rule;
                let id = &self.slots[task].id;
                let ended = match state {
                    TaskState::Success => "succeeded",
                    TaskState::Failed => "failed",
                    TaskState::Skipped => "was skipped",
                    _ => "could not run",
                };
                match verdict {
                    Verdict::Wait => {}
                    Verdict::Run => self.ready.push_back(d),
                    Verdict::UpstreamFailed => pending.push((
                        d,
                        TaskState::UpstreamFailed,
                        Some(format!("upstream task `{id}` {ended}")),
                    )),
                    Verdict::Skip => pending.push((
                        d,
                        TaskState::Skipped,
                        Some(format!(
                            "trigger rule `{}` not met: upstream task `{id}` {ended}",
                            rule.name()
                        )),
                    )),
                }
            }
        }
    }

    fn fill(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if self.cancelled || self.draining {
            return;
        }
        while let Some(&Reverse((at, task))) = self.retries.peek() {
            if at > now {
                break;
            }
            self.retries.pop();
            if self.slots[task].retry_at == Some(at) {
                self.slots[task].retry_at = None;
                self.ready.push_back(task);
            }
        }
        // Sensors start at once: they wait, they do not work.
        let (sensors, workers): (VecDeque<usize>, VecDeque<usize>) =
            self.ready.drain(..).partition(|&t| self.slots[t].sensor);
        self.ready = workers;
        for task in sensors {
            self.sensing += 1;
            self.launch(task, actions);
        }
        while self.running - self.sensing < self.max_active {
            // Highest priority first; among equals, the one ready longest.
            let best = self
                .ready
                .iter()
                .enumerate()
                .max_by_key(|&(i, &t)| (self.slots[t].priority, std::cmp::Reverse(i)))
                .map(|(i, _)| i);
            let Some(task) = best.and_then(|i| self.ready.remove(i)) else {
                break;
            };
            self.launch(task, actions);
        }
    }

    /// Right after [`resume`](Self::resume): task `task` has an attempt that ended while no vane
    /// process watched it, whose end the caller reports next with [`finished`](Self::finished).
    /// Until then it is running: nothing downstream starts, and it is not launched again.
    pub fn ended_unwatched(&mut self, task: usize) {
        let slot = &mut self.slots[task];
        if slot.state != TaskState::Queued {
            return;
        }
        slot.state = TaskState::Running;
        self.running += 1;
        if slot.sensor {
            self.sensing += 1;
        }
        self.ready.retain(|&t| t != task);
    }

    /// Takes back a [`Action::Launch`] that could not be carried out yet (its pool had no free
    /// slot): the task is ready again, first in line, and its attempt number is given back.
    pub fn unlaunch(&mut self, task: usize) {
        let slot = &mut self.slots[task];
        debug_assert_eq!(slot.state, TaskState::Running);
        slot.state = TaskState::Queued;
        slot.attempts -= 1;
        self.running -= 1;
        if slot.sensor {
            self.sensing -= 1;
        }
        self.ready.push_front(task);
    }

    fn launch(&mut self, task: usize, actions: &mut Vec<Action>) {
        let slot = &mut self.slots[task];
        slot.state = TaskState::Running;
        slot.attempts += 1;
        self.running += 1;
        actions.push(Action::Launch {
            task,
            attempt: slot.attempts,
        });
    }
}

fn set(task: usize, state: TaskState, reason: Option<String>) -> Action {
    Action::SetState {
        task,
        state,
        reason,
    }
}
