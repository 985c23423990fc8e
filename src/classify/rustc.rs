//! rustc's room: whether sccache could ever cache a rustc call, from its arguments alone.
//!
//! The rules follow sccache 0.16's own argument parser (`src/compiler/rust.rs`, `parse_arguments`):
//! a call it reports as "not a compilation" or "cannot cache" is only run locally by sccache after a
//! round trip to its server, which may first have to start. Sending such calls straight to the
//! compiler saves that trip and, more importantly, keeps cargo's probes (`-vV`, `--print`) and
//! feature probes on stdin independent of sccache's health. Erring in either direction is safe: a
//! call bypassed wrongly loses a cache hit, a call forwarded wrongly costs one round trip.

use std::ffi::{OsStr, OsString};
use std::path::Path;

use super::Uncacheable;

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
        // sccache parses the values of these options as UTF-8 strings and refuses the call
        // when one is not.
        let typed = matches!(
            name,
            "-C" | "--codegen"
                | "--color"
                | "--crate-name"
                | "--crate-type"
                | "--emit"
                | "--extern"
                | "--json"
                | "-L"
                | "-Z"
                | "-l"
        );
        let Some(text) = value.to_str() else {
            if typed || (name == "--target" && !is_json_path(value)) {
                return Some(Uncacheable("non-utf8"));
            }
            continue;
        };
        match name {
            "--print" | "--explain" | "--pretty" | "--unpretty" => {
                return Some(Uncacheable("probe"))
            }
            "--sysroot" | "-o" => return Some(Uncacheable("output-or-sysroot")),
            "--crate-name" => crate_name_seen = true,
            "--out-dir" => out_dir_seen = true,
            "--crate-type" => {
                crate_type_seen = true;
                let cacheable = text
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
                // Kinds are compared whole: `link=PATH` is not `link` to sccache.
                let kinds: Vec<&str> = text.split(',').collect();
                if !kinds.iter().any(|k| matches!(*k, "link" | "metadata")) {
                    // Nothing sccache would store (`--emit=dep-info` alone, say).
                    return Some(Uncacheable("emit"));
                }
                let cacheable = kinds
                    .iter()
                    .all(|k| matches!(*k, "link" | "metadata" | "dep-info"));
                if !cacheable {
                    return Some(Uncacheable("emit"));
                }
            }
            "-C" | "--codegen" => {
                let key = text.split('=').next().unwrap_or("");
                if key == "incremental" {
                    return Some(Uncacheable("incremental"));
                }
                if text == "extra-filename" {
                    // Without a value: sccache cannot name the dep-info file.
                    return Some(Uncacheable("extra-filename"));
                }
            }
            "--extern" if !text.contains('=') => return Some(Uncacheable("extern")),
            "--target" if !is_json_path(value) && target_json_exists(value) => {
                // sccache cannot tell a built-in target from `X.json` then, and refuses.
                return Some(Uncacheable("target-unsure"));
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

fn is_json_path(value: &OsStr) -> bool {
    Path::new(value).extension().is_some_and(|e| e == "json")
}

/// Does `<value>.json` exist? Only asked for `--target`, which cargo passes in cross builds.
fn target_json_exists(value: &OsStr) -> bool {
    let mut path = value.to_owned();
    path.push(".json");
    Path::new(&path).is_file()
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

    #[test]
    fn parity_with_sccache_0_16() {
        let emit = |e: &str| check(&LIB.replace("--emit=dep-info,metadata,link", e));
        assert_eq!(emit("--emit=dep-info=/t/x.d,link"), Some("emit"));
        assert_eq!(emit("--emit=link=/t/x.rlib"), Some("emit"));
        assert_eq!(emit("--emit=dep-info"), Some("emit"));
        assert_eq!(emit("--emit=metadata"), None);
        assert_eq!(emit("--emit link"), None);
        assert_eq!(
            check(&format!("{LIB} -C extra-filename")),
            Some("extra-filename")
        );
        assert_eq!(
            check(&format!("{LIB} -Cextra-filename")),
            Some("extra-filename")
        );
        assert_eq!(check(&format!("{LIB} --extern proc_macro")), Some("extern"));
        assert_eq!(
            check(&format!("{LIB} --target x86_64-unknown-linux-gnu")),
            None
        );
        assert_eq!(check(&format!("{LIB} --target /t/custom.json")), None);
        let dir = tempfile::tempdir().unwrap();
        let custom = dir.path().join("custom");
        std::fs::write(custom.with_extension("json"), "{}").unwrap();
        let target = format!("{LIB} --target {}", custom.display());
        assert_eq!(check(&target), Some("target-unsure"));
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_values_of_typed_options() {
        use std::os::unix::ffi::OsStringExt;
        for opt in ["--crate-name", "-C", "--extern", "-L", "--json", "--target"] {
            let mut args: Vec<OsString> = LIB.split_whitespace().map(OsString::from).collect();
            args.push(opt.into());
            args.push(OsString::from_vec(b"x=\xff".to_vec()));
            assert_eq!(uncacheable(&args), Some(Uncacheable("non-utf8")), "{opt}");
        }
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

    /// Mutation survivors of the classifier (cargo-mutants): each case below is decided by one
    /// condition alone.
    #[test]
    fn each_condition_decides_on_its_own() {
        // The input may come first; only a first argument naming rustc is skipped.
        let input_first = format!("src/lib.rs {}", LIB.replace(" src/lib.rs", ""));
        assert_eq!(check(&input_first), None);
        // Each required option, missing alone.
        for (opt, without) in [
            ("--emit", LIB.replace("--emit=dep-info,metadata,link", "")),
            ("--crate-name", LIB.replace("--crate-name foo", "")),
            ("--out-dir", LIB.replace("--out-dir /t/deps", "")),
        ] {
            assert_eq!(check(&without), Some("missing-option"), "without {opt}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_non_utf8_target_is_refused_unless_it_names_a_json_file() {
        use std::os::unix::ffi::OsStringExt;
        let with_target = |target: &[u8]| {
            let mut args: Vec<OsString> = LIB.split_whitespace().map(OsString::from).collect();
            args.push("--target".into());
            args.push(OsString::from_vec(target.to_vec()));
            uncacheable(&args).map(|u| u.0)
        };
        assert_eq!(with_target(b"/t/\xff.json"), None);
        assert_eq!(with_target(b"/t/\xff"), Some("non-utf8"));
        assert_eq!(with_target(b"/t/\xff.jsonx"), Some("non-utf8"));
    }
}
