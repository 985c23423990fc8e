//! Helpers shared by the integration tests, one module per topic. Everything but the GitHub
//! Actions runner is re-exported here, so a test file needs only `use crate::support::*;`.
//!
//! - `sandbox`: the per-test sandbox, its environment, its processes, running as another user.
//! - `toolchain`: the binary under test, the Rust toolchain, the deadlines.
//! - `sccache`: the real sccache (and the other releases CI names) and its server.
//! - `fakes`: fake sccache and fake compiler programs, for faults the real ones cannot show.
//! - `fixtures`: the fixture workspaces, their expected output, the one-file `victim.rs` call.
//! - `status`: what `maybe-sccache status --json` says (breaker, counters).
//! - `run`: running a child with a deadline (`Run`, `run`).
//! - `ports`: loopback ports reserved per test.
//! - `files`: writing files and scripts, quoting, counting text.
//! - `json`: the tiny JSON helpers.
//! - `cloud`: azurite and the test-owned GitHub Actions cache service, and sccache's environment
//!   for each.
//! - `proxy`: a TCP proxy in front of a backend that can black-hole or slow down its replies.
//! - `gha_runner`: a stand-in GitHub Actions runner for the action example (not re-exported).

mod cloud;
mod commands;
pub mod dist_cluster;
mod fakes;
mod files;
mod fixtures;
pub mod gha_runner;
mod json;
mod ports;
mod proxy;
mod run;
mod sandbox;
mod sccache;
mod status;
mod toolchain;

pub use cloud::*;
pub use commands::*;
pub use fakes::*;
pub use files::*;
pub use fixtures::*;
pub use json::*;
pub use ports::*;
pub use proxy::*;
pub use run::*;
pub use sandbox::*;
pub use sccache::*;
pub use status::*;
pub use toolchain::*;
