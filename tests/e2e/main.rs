//! End-to-end tests: the real `vane` binary, run in throw-away project folders.
//!
//! Each test builds its own folder (see [`harness::Project`]), so tests run in parallel.
//! Snapshots live in `tests/e2e/snapshots/`.

mod browser;
mod harness;

mod agents;
mod alerts;
mod artifacts;
mod backfill;
mod checks;
mod clear;
mod crash;
mod deploy;
mod examples;
mod exit_codes;
mod hostile;
mod hosts;
mod http;
mod lifecycle;
mod logs;
mod metrics;
mod pools;
mod readme;
mod recording;
mod running;
mod scheduler;
mod stopping;
mod templates;
mod ui;
mod validation;
mod why;
