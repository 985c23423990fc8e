//! Places: the user's home, cache, config and data directories, as the `dirs` crate finds them,
//! except that a statically linked glibc build never asks glibc's NSS for the home directory.
//!
//! `dirs` falls back to `getpwuid_r` when `HOME` is unset. In a static glibc binary that call may
//! load the system's NSS modules (`libnss_systemd`, `libnss_sss`, …) into a process that has no
//! dynamic libc, which crashes it: a user with no `/etc/passwd` entry and no `HOME` (a container
//! run with `--user 1234`, say) would fail every build. So without `HOME` a static build knows only
//! the XDG variables, and otherwise no home at all (the shim then runs without a state dir).

use std::env;
use std::path::PathBuf;

/// Is this a statically linked glibc build (see README, "Install")?
const STATIC_GLIBC: bool = cfg!(all(
    target_os = "linux",
    target_env = "gnu",
    target_feature = "crt-static"
));

/// Would asking `dirs` mean asking glibc's NSS from a static build?
fn home_lookup_unsafe() -> bool {
    STATIC_GLIBC && env::var_os("HOME").is_none_or(|h| h.is_empty())
}

/// An XDG variable's directory: only an absolute path counts, as in `dirs`.
fn xdg(var: &str) -> Option<PathBuf> {
    env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

pub fn home_dir() -> Option<PathBuf> {
    if home_lookup_unsafe() {
        return None;
    }
    dirs::home_dir()
}

pub fn cache_dir() -> Option<PathBuf> {
    if home_lookup_unsafe() {
        return xdg("XDG_CACHE_HOME");
    }
    dirs::cache_dir()
}

pub fn config_dir() -> Option<PathBuf> {
    if home_lookup_unsafe() {
        return xdg("XDG_CONFIG_HOME");
    }
    dirs::config_dir()
}

pub fn data_local_dir() -> Option<PathBuf> {
    if home_lookup_unsafe() {
        return xdg("XDG_DATA_HOME");
    }
    dirs::data_local_dir()
}

pub fn preference_dir() -> Option<PathBuf> {
    if home_lookup_unsafe() {
        return xdg("XDG_CONFIG_HOME");
    }
    dirs::preference_dir()
}
