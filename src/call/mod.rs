//! The one-call path: everything a `maybe-sccache <compiler> <args…>` call runs, and nothing else.
//!
//! `wrapper::run` decides the call on one screen: `locate` finds sccache, `forward` hands the call
//! to it (with `watch`'s watchdog over a slow call, which also gives the verdict after it),
//! `judge` says what sccache's result means, and `exec` runs the compiler directly and passes its
//! exit on. Nothing here imports the human and CI commands (`crate::cmd`).

pub mod exec;
pub mod forward;
pub mod judge;
pub mod locate;
pub mod watch;
pub mod wrapper;
