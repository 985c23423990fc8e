//! Helpers shared by the integration tests, one module per topic. Everything but the GitHub
//! Actions runner, the backend servers and the dist cluster is re-exported here, so a test file
//! needs only `use crate::support::*;` (and those three by name where it uses them).
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
//! - `backend_servers`: real backend servers and a black-hole proxy for the backend tests (not
//!   re-exported).
//! - `dist_cluster`: a real sccache-dist scheduler and build server for the dist tests (not
//!   re-exported).
//! - `dist_jwt`: RS256 client tokens and the JWKS server a JWT-validating scheduler reads (not
//!   re-exported).

pub mod backend_servers;
mod cloud;
mod commands;
pub mod dist_cluster;
pub mod dist_jwt;
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
