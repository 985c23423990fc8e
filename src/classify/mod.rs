//! Deciding, before anything else, which compiler family a call is for and whether sccache could
//! ever cache it. Each family's rules live in a room of their own (`rustc`, `cc` for gcc and clang,
//! `msvc` for cl and clang-cl); a new family is one more room and one more arm in [`uncacheable`].
//!
//! Erring in either direction is safe: a call bypassed wrongly loses a cache hit, a call forwarded
//! wrongly costs one round trip to the sccache server, which then runs the compiler itself. So the
//! rules only bypass what sccache 0.16 certainly refuses, and anything unclear is forwarded.

use std::ffi::{OsStr, OsString};
use std::path::Path;

mod cc;
mod msvc;
mod rustc;

/// Why a call is not worth forwarding. The `&'static str` is the reason shown in logs and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uncacheable(pub &'static str);

/// The compiler families sccache 0.16 caches, as far as the shim tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// rustc, also behind `clippy-driver` or a `RUSTC_WORKSPACE_WRAPPER` (`<wrapper> rustc …`).
    Rustc,
    /// gcc- and clang-style drivers: cc, c++, gcc, g++, clang, clang++, their target-prefixed and
    /// versioned names, and compilers the shim does not know by name (see [`Family::of`]).
    Gcc,
    /// cl and clang-cl, with their `/c`-style options.
    Msvc,
    /// nvcc and the other drivers whose rules the shim does not model: everything is forwarded.
    Other,
}

impl Family {
    /// Decides the family from the compiler's file name and, for names it does not know, from the
    /// arguments. sccache itself detects a C compiler by running it, so a wrapper script (a
    /// cargo-zigbuild `zig cc` script, say) can be cached too: an unknown name whose arguments do
    /// not look like rustc's gets the gcc rules, and if sccache answers "Compiler not supported"
    /// the call compiles directly without holding it against sccache.
    pub fn of(compiler: &OsStr, args: &[OsString]) -> Family {
        if let Some(family) = by_name(compiler) {
            return family;
        }
        // `RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER rustc …`: the wrapper's name says nothing.
        if args.first().is_some_and(|a| is_rustc_like(a)) || looks_like_rustc_call(args) {
            return Family::Rustc;
        }
        Family::Gcc
    }

    /// The language's name in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Rustc => "rust",
            Family::Gcc | Family::Msvc | Family::Other => "c",
        }
    }
}

/// Returns `Some` when sccache 0.16 would not cache this call (the arguments after the compiler).
pub fn uncacheable(family: Family, args: &[OsString]) -> Option<Uncacheable> {
    // sccache 0.16 hands arguments on as UTF-8, with U+FFFD for bytes that are not: the compiler
    // would get different arguments than the caller gave (rustc refuses such arguments itself,
    // and should say so).
    if args.iter().any(|a| a.to_str().is_none()) {
        return Some(Uncacheable("non-utf8-arg"));
    }
    match family {
        Family::Rustc => rustc::uncacheable(args),
        Family::Gcc => cc::uncacheable(args),
        Family::Msvc => msvc::uncacheable(args),
        Family::Other => None,
    }
}

/// What a call compiles, for the log (` crate NAME`, or ` FILE`, with a leading space; empty when
/// neither shows): rustc's `--crate-name`, else the last argument that is not an option, which is
/// where cc-rs and CMake put the source file. Called only when the log is on.
pub fn subject(args: &[OsString]) -> String {
    if let Some(i) = args.iter().position(|a| a == "--crate-name") {
        if let Some(name) = args.get(i + 1) {
            return format!(" crate {}", name.to_string_lossy());
        }
    }
    args.iter()
        .rev()
        .find(|a| !a.as_encoded_bytes().starts_with(b"-"))
        .map(|a| format!(" {}", a.to_string_lossy()))
        .unwrap_or_default()
}

/// The family a compiler's file name gives away, if it does. Target prefixes
/// (`aarch64-linux-gnu-gcc`), version suffixes (`gcc-12`, `clang++-17`) and `.exe` are looked
/// through; case is ignored, as Windows file names do.
fn by_name(compiler: &OsStr) -> Option<Family> {
    let name = stem(compiler)?;
    let unversioned = strip_version(&name);
    if matches!(unversioned, "rustc" | "clippy-driver") {
        return Some(Family::Rustc);
    }
    if unversioned == "clang-cl" {
        return Some(Family::Msvc);
    }
    let driver = unversioned.rsplit('-').next().unwrap_or(unversioned);
    match driver {
        "cc" | "c++" | "gcc" | "g++" | "clang" | "clang++" => Some(Family::Gcc),
        "cl" => Some(Family::Msvc),
        "nvcc" | "nvc" | "nvc++" => Some(Family::Other),
        _ => None,
    }
}

/// The lowercased file name without `.exe`.
fn stem(path: &OsStr) -> Option<String> {
    let name = Path::new(path).file_name()?.to_str()?.to_ascii_lowercase();
    Some(match name.strip_suffix(".exe") {
        Some(stem) => stem.to_owned(),
        None => name,
    })
}

/// `gcc-12` → `gcc`, `clang++-17.0.1` → `clang++`; names without such a suffix are kept.
fn strip_version(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((base, version))
            if !base.is_empty()
                && version.starts_with(|c: char| c.is_ascii_digit())
                && version.chars().all(|c| c.is_ascii_digit() || c == '.') =>
        {
            base
        }
        _ => name,
    }
}

/// sccache's own test for "rustc as the first argument": the file stem is rustc or clippy-driver.
fn is_rustc_like(arg: &OsStr) -> bool {
    matches!(stem(arg).as_deref(), Some("rustc" | "clippy-driver"))
}

/// Arguments only rustc (or cargo's probes of it) are given.
fn looks_like_rustc_call(args: &[OsString]) -> bool {
    args.iter().any(|a| {
        let b = a.as_encoded_bytes();
        b == b"-vV"
            || b.starts_with(b"--crate-name")
            || b.starts_with(b"--crate-type")
            || b.starts_with(b"--emit")
            || b.starts_with(b"--print")
            || b.ends_with(b".rs")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            subject(&os(&[
                "--crate-name",
                "zstd_sys",
                "--edition=2018",
                "src/lib.rs"
            ])),
            " crate zstd_sys"
        );
        assert_eq!(
            subject(&os(&["-O0", "-o", "out/bad.o", "-c", "csrc/bad.c"])),
            " csrc/bad.c"
        );
        assert_eq!(subject(&os(&["-vV"])), "");
    }

    fn family(compiler: &str, args: &str) -> Family {
        let args: Vec<OsString> = args.split_whitespace().map(OsString::from).collect();
        Family::of(OsStr::new(compiler), &args)
    }

    #[test]
    fn families_by_name() {
        for rustc in [
            "rustc",
            "/t/bin/rustc",
            "RUSTC.EXE",
            "rustc-2",
            "clippy-driver",
            "clippy-driver.exe",
        ] {
            assert_eq!(family(rustc, "-c foo.c"), Family::Rustc, "{rustc}");
        }
        for gcc in [
            "cc",
            "/usr/bin/c++",
            "gcc",
            "g++",
            "clang",
            "clang++",
            "gcc-12",
            "clang++-17",
            "aarch64-linux-gnu-gcc",
            "x86_64-linux-gnu-gcc-12",
            "x86_64-w64-mingw32-g++",
            "zig-cc",
        ] {
            assert_eq!(family(gcc, "--crate-name x"), Family::Gcc, "{gcc}");
        }
        for msvc in [
            "cl",
            "cl.exe",
            "CL.EXE",
            "clang-cl",
            "clang-cl.exe",
            "clang-cl-17",
        ] {
            assert_eq!(family(msvc, ""), Family::Msvc, "{msvc}");
        }
        assert_eq!(family("nvcc", "-c x.cu"), Family::Other);
    }

    #[test]
    fn unknown_names_by_arguments() {
        assert_eq!(family("my-wrapper", "rustc --crate-name x"), Family::Rustc);
        assert_eq!(family("my-wrapper", "/t/bin/rustc -vV"), Family::Rustc);
        assert_eq!(family("my-rustc.sh", "-vV"), Family::Rustc);
        assert_eq!(
            family("my-rustc.sh", "--crate-name x src/lib.rs"),
            Family::Rustc
        );
        assert_eq!(family("zigcc.sh", "-c foo.c -o foo.o"), Family::Gcc);
        assert_eq!(family("emcc", "-O2 -c foo.c"), Family::Gcc);
        assert_eq!(family("gcc-posix", "-c foo.c"), Family::Gcc);
    }

    #[cfg(unix)]
    #[test]
    fn arguments_that_are_not_utf8_never_go_to_sccache() {
        use std::os::unix::ffi::OsStringExt;
        let mut args: Vec<OsString> = ["--crate-name", "x", "--crate-type", "lib", "x.rs"]
            .iter()
            .map(OsString::from)
            .collect();
        args.push(OsString::from_vec(b"--cfg=\xff".to_vec()));
        for family in [Family::Rustc, Family::Gcc, Family::Msvc, Family::Other] {
            assert_eq!(
                uncacheable(family, &args),
                Some(Uncacheable("non-utf8-arg")),
                "{family:?}"
            );
        }
    }

    #[test]
    fn languages_for_logs_and_counters() {
        assert_eq!(Family::Rustc.as_str(), "rust");
        for family in [Family::Gcc, Family::Msvc, Family::Other] {
            assert_eq!(family.as_str(), "c", "{family:?}");
        }
    }

    #[test]
    fn version_suffixes() {
        assert_eq!(strip_version("gcc-12"), "gcc");
        assert_eq!(strip_version("clang++-17.0.1"), "clang++");
        assert_eq!(strip_version("-12"), "-12");
        assert_eq!(strip_version("gcc-x12"), "gcc-x12");
        assert_eq!(strip_version("gcc-12a"), "gcc-12a");
    }

    /// A compiler whose name says nothing: the arguments decide, each rustc-only argument on its
    /// own, and a first argument naming rustc by its path.
    #[test]
    fn unknown_names_are_decided_by_each_rustc_argument_alone() {
        for args in [
            "-vV",
            "--crate-name x",
            "--crate-type lib",
            "--emit=link",
            "--print sysroot",
            "x.rs",
            "/t/bin/rustc @/t/args",
        ] {
            assert_eq!(family("my-wrapper", args), Family::Rustc, "{args}");
        }
        assert_eq!(family("my-wrapper", "-c x.c -o x.o"), Family::Gcc);
    }
}
