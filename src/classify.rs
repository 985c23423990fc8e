//! Deciding, from the compiler's arguments alone, whether sccache could ever cache a call.
//!
//! The rules follow sccache 0.16's own argument parser (`src/compiler/rust.rs`, `parse_arguments`):
//! a call it reports as "not a compilation" or "cannot cache" is only run locally by sccache after a
//! round trip to its server, which may first have to start. Sending such calls straight to the
//! compiler saves that trip and, more importantly, keeps cargo's probes (`-vV`, `--print`) and
//! feature probes on stdin independent of sccache's health. Erring in either direction is safe: a
//! call bypassed wrongly loses a cache hit, a call forwarded wrongly costs one round trip.

use std::ffi::{OsStr, OsString};

/// Why a call is not worth forwarding. The `&'static str` is the reason shown in logs and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uncacheable(pub &'static str);

/// Options that take a value, either joined (`--opt=value`, `-Cvalue`) or as the next argument.
/// Anything else starting with `-` is a flag without a value, as sccache treats it.
const LONG_WITH_VALUE: &[&str] = &[
    "--allow",
    "--cap-lints",
    "--cfg",
    "--check-cfg",
    "--codegen",
    "--color",
    "--crate-name",
    "--crate-type",
    "--deny",
    "--diagnostic-width",
    "--emit",
    "--error-format",
    "--explain",
    "--extern",
    "--forbid",
    "--json",
    "--out-dir",
    "--pretty",
    "--print",
    "--remap-path-prefix",
    "--sysroot",
    "--target",
    "--unpretty",
    "--warn",
];
const SHORT_WITH_VALUE: &[&str] = &["-A", "-C", "-D", "-F", "-L", "-W", "-Z", "-l", "-o"];

/// Returns `Some` when sccache 0.16 would not cache this call (the arguments after the compiler).
pub fn uncacheable(args: &[OsString]) -> Option<Uncacheable> {
    let mut input_seen = false;
    let mut crate_type_seen = false;
    let mut emit_seen = false;
    let mut crate_name_seen = false;
    let mut out_dir_seen = false;
    let mut iter = args.iter().enumerate();
    while let Some((idx, arg)) = iter.next() {
        let bytes = arg.as_encoded_bytes();
        if bytes.first() == Some(&b'@') {
            // An argfile (cargo uses them for long command lines). sccache 0.16 does not expand
            // them for rustc, so it sees one input and no options: never cacheable.
            return Some(Uncacheable("argfile"));
        }
        if bytes == b"-" {
            return Some(Uncacheable("stdin"));
        }
        if bytes.first() != Some(&b'-') || bytes.len() == 1 {
            // With `clippy-driver rustc …` the first argument names the real compiler.
            if idx == 0 && bytes == b"rustc" {
                continue;
            }
            if input_seen {
                return Some(Uncacheable("multiple-inputs"));
            }
            input_seen = true;
            continue;
        }
        let Some((name, value)) = split_option(arg, &mut iter) else {
            // A flag without a value.
            match bytes {
                b"-V" | b"-vV" | b"--version" | b"--help" | b"-h" => {
                    return Some(Uncacheable("probe"))
                }
                _ => continue,
            }
        };
        let value = value.to_string_lossy();
        match name {
            "--print" | "--explain" | "--pretty" | "--unpretty" => {
                return Some(Uncacheable("probe"))
            }
            "--sysroot" | "-o" => return Some(Uncacheable("output-or-sysroot")),
            "--crate-name" => crate_name_seen = true,
            "--out-dir" => out_dir_seen = true,
            "--crate-type" => {
                crate_type_seen = true;
                let cacheable = value
                    .split(',')
                    .all(|t| matches!(t, "lib" | "rlib" | "staticlib"));
                if !cacheable {
                    return Some(Uncacheable("crate-type"));
                }
            }
            "--emit" => {
                if emit_seen {
                    return Some(Uncacheable("emit"));
                }
                emit_seen = true;
                let cacheable = value
                    .split(',')
                    .map(|e| e.split('=').next().unwrap_or(""))
                    .all(|e| matches!(e, "link" | "metadata" | "dep-info"));
                if !cacheable {
                    return Some(Uncacheable("emit"));
                }
            }
            "-C" | "--codegen" => {
                let key = value.split('=').next().unwrap_or("");
                if key == "incremental" {
                    return Some(Uncacheable("incremental"));
                }
            }
            _ => {}
        }
    }
    if !input_seen {
        return Some(Uncacheable("no-input"));
    }
    if !crate_type_seen {
        // No crate type means a binary (or whatever `#![crate_type]` says): linked, not cached.
        return Some(Uncacheable("crate-type"));
    }
    if !emit_seen || !crate_name_seen || !out_dir_seen {
        return Some(Uncacheable("missing-option"));
    }
    None
}

/// Splits an option that takes a value into its name and value, taking the value from the next
/// argument when it is not joined. Returns `None` for flags without a value.
fn split_option<'a, I>(arg: &'a OsStr, rest: &mut I) -> Option<(&'static str, &'a OsStr)>
where
    I: Iterator<Item = (usize, &'a OsString)>,
{
    let bytes = arg.as_encoded_bytes();
    for &name in LONG_WITH_VALUE {
        let Some(tail) = bytes.strip_prefix(name.as_bytes()) else {
            continue;
        };
        if tail.is_empty() {
            return Some((name, rest.next().map_or(OsStr::new(""), |(_, v)| v)));
        }
        if let Some(value) = tail.strip_prefix(b"=") {
            return Some((name, os_str_from(value)));
        }
    }
    for &name in SHORT_WITH_VALUE {
        let Some(tail) = bytes.strip_prefix(name.as_bytes()) else {
            continue;
        };
        if tail.is_empty() {
            return Some((name, rest.next().map_or(OsStr::new(""), |(_, v)| v)));
        }
        return Some((name, os_str_from(tail)));
    }
    None
}

fn os_str_from(bytes: &[u8]) -> &OsStr {
    // SAFETY: `bytes` is a suffix of an `OsStr`'s encoded bytes that starts right after an ASCII
    // character, which is a valid split point for the platform encoding.
    unsafe { OsStr::from_encoded_bytes_unchecked(bytes) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(args: &str) -> Option<&'static str> {
        let args: Vec<OsString> = args.split_whitespace().map(OsString::from).collect();
        uncacheable(&args).map(|u| u.0)
    }

    const LIB: &str = "--crate-name foo --edition=2021 src/lib.rs --error-format=json \
        --json=diagnostic-rendered-ansi --crate-type lib --emit=dep-info,metadata,link \
        -C embed-bitcode=no -C debuginfo=2 -C metadata=abc -C extra-filename=-abc \
        --out-dir /t/deps -L dependency=/t/deps --extern bar=/t/deps/libbar.rlib";

    #[test]
    fn cargo_lib_call_is_cacheable() {
        assert_eq!(check(LIB), None);
        assert_eq!(check(&format!("rustc {LIB}")), None, "clippy-driver form");
    }

    #[test]
    fn probes() {
        assert_eq!(check("-vV"), Some("probe"));
        assert_eq!(
            check("- --crate-name ___ --print=file-names --crate-type bin"),
            Some("stdin")
        );
        assert_eq!(check("--print=sysroot"), Some("probe"));
        assert_eq!(check("--print sysroot"), Some("probe"));
        assert_eq!(check(""), Some("no-input"));
    }

    #[test]
    fn crate_types() {
        let bin = LIB.replace("--crate-type lib", "--crate-type bin");
        assert_eq!(check(&bin), Some("crate-type"));
        let pm = LIB.replace("--crate-type lib", "--crate-type=proc-macro");
        assert_eq!(check(&pm), Some("crate-type"));
        let none = LIB.replace("--crate-type lib", "");
        assert_eq!(check(&none), Some("crate-type"));
        let both = LIB.replace("--crate-type lib", "--crate-type rlib,staticlib");
        assert_eq!(check(&both), None);
    }

    #[test]
    fn other_rules() {
        let inc = format!("{LIB} -C incremental=/t/incremental");
        assert_eq!(check(&inc), Some("incremental"));
        let inc = format!("{LIB} -Cincremental=/t/incremental");
        assert_eq!(check(&inc), Some("incremental"));
        assert_eq!(check("@/tmp/args"), Some("argfile"));
        assert_eq!(check(&format!("{LIB} other.rs")), Some("multiple-inputs"));
        let asm = LIB.replace("dep-info,metadata,link", "asm");
        assert_eq!(check(&asm), Some("emit"));
        assert_eq!(check(&format!("{LIB} -o out")), Some("output-or-sysroot"));
        let no_emit = LIB.replace("--emit=dep-info,metadata,link", "");
        assert_eq!(check(&no_emit), Some("missing-option"));
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_arguments_do_not_confuse_it() {
        use std::os::unix::ffi::OsStringExt;
        let mut args: Vec<OsString> = LIB.split_whitespace().map(OsString::from).collect();
        args.push(OsString::from_vec(b"--cfg=\xff\xfe".to_vec()));
        assert_eq!(uncacheable(&args), None);
        args.push(OsString::from_vec(b"\xff.rs".to_vec()));
        assert_eq!(uncacheable(&args), Some(Uncacheable("multiple-inputs")));
    }
}
