//! The one-call path: everything a `maybe-sccache <compiler> <args…>` call runs, and nothing else.
//!
//! `wrapper::run` decides the call on one screen: `locate` finds sccache, `forward` hands the call
//! to it and judges what it did (with `watch`'s watchdog over a slow call), and `exec` runs the
//! compiler directly and passes its exit on. Nothing here imports the human and CI commands
//! (`crate::cmd`).

pub mod exec;
pub mod forward;
pub mod locate;
pub mod watch;
pub mod wrapper;
