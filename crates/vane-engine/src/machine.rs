//! The run state machine: given what happened, decide what happens next.
//!
//! It owns no processes, clock or database: the [`crate::Runner`] feeds it events with the
//! current time and carries out the [`Action`]s it returns, so every scheduling rule is tested
//! here with plain values.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Instant;

use vane_dag::{Dag, RetryPolicy};
use vane_store::{RunState, TaskState};

/// What the runner must do, in order.
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

#[derive(Debug)]
struct Slot {
    id: String,
    state: TaskState,
    attempts: u32,
    retry: RetryPolicy,
    /// Dependencies that have not succeeded yet.
    waiting_on: usize,
    downstream: Vec<usize>,
    retry_at: Option<Instant>,
}

/// The state of one DAG run's tasks.
#[derive(Debug)]
pub struct RunMachine {
    slots: Vec<Slot>,
    max_active: usize,
    running: usize,
    /// Tasks whose dependencies succeeded, in the order they became ready.
    ready: VecDeque<usize>,
    /// Retries by due time; an entry is stale when the slot's `retry_at` no longer matches.
    retries: BinaryHeap<Reverse<(Instant, usize)>>,
    cancelled: bool,
}

/// How an attempt ended, as far as scheduling is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Success,
    /// Failed; retried if the policy allows.
    Failed,
    /// Failed in a way a retry cannot fix (the run is being stopped).
    Stopped,
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
                retry: t.retry,
                waiting_on: t.depends_on.len(),
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
            .filter(|&i| slots[i].waiting_on == 0)
            .collect();
        Self {
            slots,
            max_active: max_active.max(1),
            running: 0,
            ready,
            retries: BinaryHeap::new(),
            cancelled: false,
        }
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
        let slot = &mut self.slots[task];
        match finish {
            Finish::Success => {
                slot.state = TaskState::Success;
                actions.push(set(task, TaskState::Success, None));
                for d in slot.downstream.clone() {
                    let down = &mut self.slots[d];
                    down.waiting_on -= 1;
                    if down.waiting_on == 0 && down.state == TaskState::Queued {
                        self.ready.push_back(d);
                    }
                }
            }
            Finish::Failed if !self.cancelled && slot.attempts <= slot.retry.retries => {
                let delay = slot.retry.delay_after(slot.attempts);
                slot.state = TaskState::Queued;
                slot.retry_at = Some(now + delay);
                self.retries.push(Reverse((now + delay, task)));
                let reason = format!(
                    "attempt {} failed; retry {} of {} in {}",
                    slot.attempts,
                    slot.attempts,
                    slot.retry.retries,
                    vane_dag::format_duration(delay)
                );
                actions.push(set(task, TaskState::Queued, Some(reason)));
            }
            Finish::Failed | Finish::Stopped => {
                slot.state = TaskState::Failed;
                let reason = match (finish, self.cancelled) {
                    (Finish::Stopped, _) | (_, true) => Some("the run was stopped".to_owned()),
                    _ if slot.retry.retries > 0 => {
                        Some(format!("failed after {} attempts", slot.attempts))
                    }
                    _ => None,
                };
                actions.push(set(task, TaskState::Failed, reason));
                self.fail_downstream(task, &mut actions);
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

    /// Stop the run: kill what runs, skip what has not started.
    pub fn cancel(&mut self) -> Vec<Action> {
        self.cancelled = true;
        self.ready.clear();
        let mut actions = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            match slot.state {
                TaskState::Running => actions.push(Action::Kill { task: i }),
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

    /// The run's final state once every task has finished.
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

    fn fill(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if self.cancelled {
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
        while self.running < self.max_active {
            let Some(task) = self.ready.pop_front() else {
                break;
            };
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

    fn fail_downstream(&mut self, task: usize, actions: &mut Vec<Action>) {
        let mut stack = self.slots[task].downstream.clone();
        while let Some(d) = stack.pop() {
            if self.slots[d].state != TaskState::Queued {
                continue;
            }
            self.slots[d].state = TaskState::UpstreamFailed;
            self.slots[d].retry_at = None;
            self.ready.retain(|&r| r != d);
            let reason = format!("upstream task `{}` failed", self.slots[task].id);
            actions.push(set(d, TaskState::UpstreamFailed, Some(reason)));
            stack.extend(self.slots[d].downstream.iter().copied());
        }
    }
}

fn set(task: usize, state: TaskState, reason: Option<String>) -> Action {
    Action::SetState {
        task,
        state,
        reason,
    }
}
