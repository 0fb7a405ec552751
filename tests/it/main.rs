//! The integration tests in one binary: each links the whole agent, which on a 2-core machine is
//! most of the time a test run takes, so every test that does not need a process of its own lives
//! here. `unplug_cycles` and `layers` stay apart: the first counts this process's descriptors and
//! memory, the second reads only source text.

// A panic in a test is its failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

mod alerts;
mod analyze;
mod attach;
mod bundles;
mod check;
mod control;
mod coordinator;
mod crash;
mod custody;
mod daemon;
mod demo;
mod docs;
mod faults;
mod keys;
mod measure;
mod notify;
mod output;
mod owner;
mod page;
mod paths;
mod profiles;
mod readings;
mod report;
mod runs;
mod scaleout;
mod seal_runs;
mod setup;
mod signals;
mod statistics;
mod supervisor;
mod systemd;
mod upload;
