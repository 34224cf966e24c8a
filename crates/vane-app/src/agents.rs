//! Agents and the attempts handed to them, as `vane agents`, `vane show` and the API show them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;
use vane_store::{AgentRecord, DispatchRecord, DispatchState, LeaseState, RunId, Store};

use crate::AppError;

/// The agents on a database and the attempts not yet done that were handed to them.
#[derive(Debug, Clone, Default)]
pub struct Agents {
    pub agents: Vec<AgentRecord>,
    pub open: Vec<DispatchRecord>,
}

impl Agents {
    /// # Errors
    /// The store cannot be read.
    pub fn read(store: &dyn Store) -> Result<Self, AppError> {
        Ok(Self {
            agents: store.agents()?,
            open: store.open_dispatches()?,
        })
    }

    /// How many live agents have every label of `needs`.
    #[must_use]
    pub fn offering(&self, needs: &BTreeMap<String, String>) -> usize {
        self.agents
            .iter()
            .filter(|a| a.state == LeaseState::Held && a.offers(needs))
            .count()
    }

    /// Attempts waiting for an agent, oldest first.
    pub fn waiting(&self) -> impl Iterator<Item = &DispatchRecord> {
        self.open
            .iter()
            .filter(|d| d.state == DispatchState::Queued)
    }

    /// Where an open attempt stands, as a person reads it: on which agent, or what it waits
    /// for and why.
    #[must_use]
    pub fn describe(&self, d: &DispatchRecord, now: DateTime<Utc>) -> String {
        match d.state {
            DispatchState::Queued => {
                let since = (now - d.enqueued_at).num_seconds().max(0);
                let why = match self.offering(&d.needs) {
                    0 => "no live agent has these labels; start one with `vane agent --labels ...`"
                        .to_owned(),
                    n => format!("{n} live agent(s) have these labels, all slots taken"),
                };
                format!(
                    "waits {since}s for an agent with {}: {why}",
                    labels_text(&d.needs)
                )
            }
            DispatchState::Running => format!(
                "runs on agent {}{}",
                d.agent_host.as_deref().unwrap_or("?"),
                if d.agent_alive {
                    String::new()
                } else {
                    " (its lease expired: presumed lost)".to_owned()
                }
            ),
            DispatchState::Done => "done".to_owned(),
        }
    }

    /// The open attempts of `run`, with where each stands.
    #[must_use]
    pub fn of_run(&self, run: RunId, now: DateTime<Utc>) -> Vec<(&DispatchRecord, String)> {
        self.open
            .iter()
            .filter(|d| d.run == run)
            .map(|d| (d, self.describe(d, now)))
            .collect()
    }

    /// As `vane agents --json` and `GET /api/agents` give it.
    #[must_use]
    pub fn view(&self, now: DateTime<Utc>) -> AgentsView {
        AgentsView {
            agents: self
                .agents
                .iter()
                .map(|a| AgentView {
                    host: a.host.clone(),
                    lease: a.lease.clone(),
                    pid: a.pid,
                    labels: a.labels.clone(),
                    slots: a.slots,
                    running: a.running,
                    state: a.state.as_str(),
                    started_at: a.started_at.to_rfc3339(),
                    last_heartbeat: a.renewed_at.to_rfc3339(),
                })
                .collect(),
            waiting: self
                .waiting()
                .map(|d| WaitingView {
                    run_id: d.run.0,
                    task_id: d.task.clone(),
                    attempt: d.attempt,
                    needs: d.needs.clone(),
                    since: d.enqueued_at.to_rfc3339(),
                    live_agents_with_labels: self.offering(&d.needs),
                    why: self.describe(d, now),
                })
                .collect(),
        }
    }

    /// `dispatched` of `vane show --json`: the run's attempts on agents or waiting for one.
    #[must_use]
    pub fn of_run_view(&self, run: RunId, now: DateTime<Utc>) -> Vec<DispatchView> {
        self.of_run(run, now)
            .into_iter()
            .map(|(d, why)| DispatchView {
                task_id: d.task.clone(),
                attempt: d.attempt,
                needs: d.needs.clone(),
                state: d.state.as_str(),
                agent: d.agent_host.clone(),
                detail: why,
            })
            .collect()
    }
}

/// The agents on a database and the attempts waiting for one.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Agents")]
pub struct AgentsView {
    pub agents: Vec<AgentView>,
    /// Oldest first.
    pub waiting: Vec<WaitingView>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Agent")]
pub struct AgentView {
    pub host: String,
    pub lease: String,
    pub pid: u32,
    /// What the host offers (`gpu = "a100"`); tasks that need labels run only where all are.
    pub labels: BTreeMap<String, String>,
    pub slots: u32,
    pub running: u32,
    /// `held`, `expired` or `released`.
    pub state: &'static str,
    pub started_at: String,
    pub last_heartbeat: String,
}

/// An attempt waiting for an agent.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Waiting")]
pub struct WaitingView {
    pub run_id: i64,
    pub task_id: String,
    pub attempt: u32,
    /// The labels its task needs.
    pub needs: BTreeMap<String, String>,
    pub since: String,
    pub live_agents_with_labels: usize,
    pub why: String,
}

/// An attempt of a run handed to an agent.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Dispatch")]
pub struct DispatchView {
    pub task_id: String,
    pub attempt: u32,
    pub needs: BTreeMap<String, String>,
    /// `queued`, `running` or `done`.
    pub state: &'static str,
    /// The agent's host, once one claimed it.
    pub agent: Option<String>,
    pub detail: String,
}

/// `gpu=a100,zone=eu`, or `(any)`.
#[must_use]
pub fn labels_text(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "(any)".to_owned();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
