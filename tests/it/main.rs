//! Integration tests for the `maybe-sccache` binary.
//!
//! Every test builds its own sandbox (`support::Sandbox`): a temporary directory holding the bin
//! directory that is first on `PATH`, an empty `CARGO_HOME`, `HOME`, `SCCACHE_DIR`, the shim's
//! state directory and the cargo target directory, plus a private sccache server port. Children
//! run with a cleared environment, so nothing from the developer's machine leaks in.
//!
//! Test modules are named by topic. The helpers they share live in `support/`, one module per
//! topic (sandbox, toolchain, sccache, fakes, fixtures, status, commands, run, ports, files,
//! json), all re-exported from `support`, so `use crate::support::*;` brings them in; the
//! stand-in GitHub Actions runner (`support::gha_runner`) is imported by the action tests only,
//! the backend servers (`support::backend_servers`) by the backend tests, and the sccache-dist
//! cluster (`support::dist_cluster`, `support::dist_jwt`) by the dist tests (`dist`,
//! `dist_faults`).

#![cfg(unix)]

mod support;

mod action;
mod action_backend;
mod action_install;
mod backends;
mod breaker;
mod c_cpp;
mod cargo_builds;
mod ci_backends;
mod ci_commands;
mod cli;
mod cloud_midbuild;
mod dist;
mod dist_faults;
mod doctor;
mod entry;
mod fallback;
mod gha_throttle;
mod judgement;
mod long_compiles;
mod passthrough;
mod promises;
mod redis;
mod resilience;
mod sccache_real;
mod secrets;
mod shared_machine;
mod signals;
mod state_dir;
mod status;
mod watchdog;
mod wheel;
