//! Integration tests for the `maybe-sccache` binary.
//!
//! Every test builds its own sandbox (`support::Sandbox`): a temporary directory holding the bin
//! directory that is first on `PATH`, an empty `CARGO_HOME`, `HOME`, `SCCACHE_DIR`, the shim's
//! state directory and the cargo target directory, plus a private sccache server port. Children
//! run with a cleared environment, so nothing from the developer's machine leaks in.

#![cfg(unix)]

mod support;

mod action;
mod backends;
mod breaker;
mod c_cpp;
mod cargo_builds;
mod cli;
mod dist;
mod dist_cluster;
mod entry;
mod fallback;
mod front;
mod judgement;
mod passthrough;
mod promises;
mod resilience;
mod sccache_real;
mod secrets;
mod shared_machine;
mod signals;
mod state_dir;
mod wheel;
