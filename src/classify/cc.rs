//! The gcc/clang room: whether sccache could ever cache a C or C++ call of a gcc-style driver.
//!
//! The rules follow sccache 0.16's `src/compiler/gcc.rs` (`parse_arguments`, with clang's extra
//! options from `clang.rs`): it caches only a compile to an object (`-c`) of exactly one source
//! file of a language it knows, and refuses preprocessing (`-E`, `-M`, `-MM`, `-P`),
//! `-fsyntax-only`, `-save-temps` and a source on stdin (`-`). Links, probes and cc-rs's `-E`
//! expansions therefore go straight to the compiler. Arguments from `@file`s are expanded by
//! sccache, so a call with one is forwarded unless a rule outside the file already refuses it.

use std::ffi::OsString;
use std::path::Path;

use super::Uncacheable;

/// Options that take their value as the next argument when it is not joined (`-I dir`, `-o out`):
/// that argument is a value, not an input. The union of gcc's and clang's tables in sccache.
const WITH_SEPARATE_VALUE: &[&[u8]] = &[
    b"--param",
    b"--serialize-diagnostics",
    b"--sysroot",
    b"--target",
    b"-A",
    b"-B",
    b"-D",
    b"-F",
    b"-G",
    b"-I",
    b"-L",
    b"-MF",
    b"-MQ",
    b"-MT",
    b"-U",
    b"-V",
    b"-Xassembler",
    b"-Xclang",
    b"-Xlinker",
    b"-Xpreprocessor",
    b"-add-plugin",
    b"-arch",
    b"-aux-info",
    b"-b",
    b"-dependency-file",
    b"-fdebug-compilation-dir",
    b"-gcc-toolchain",
    b"-idirafter",
    b"-iframework",
    b"-imacros",
    b"-imultilib",
    b"-include",
    b"-include-pch",
    b"-index-store-path",
    b"-install_name",
    b"-iprefix",
    b"-iquote",
    b"-isysroot",
    b"-isystem",
    b"-ivfsstatcache",
    b"-iwithprefix",
    b"-iwithprefixbefore",
    b"-load",
    b"-mllvm",
    b"-o",
    b"-target",
    b"-u",
    b"-x",
    b"-z",
];

/// Returns `Some` when sccache 0.16 would not cache this call (the arguments after the compiler).
pub fn uncacheable(args: &[OsString]) -> Option<Uncacheable> {
    let mut compile = false;
    let mut argfile = false;
    let mut language_given = false;
    let mut inputs = 0usize;
    let mut input: Option<&OsString> = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let bytes = arg.as_encoded_bytes();
        match bytes {
            b"-" => return Some(Uncacheable("c-stdin")),
            b"-c" => compile = true,
            b"-E" | b"-M" | b"-MM" | b"-P" => return Some(Uncacheable("c-preprocess")),
            b"-fsyntax-only" => return Some(Uncacheable("c-syntax-only")),
            b"-save-temps" | b"-save-temps=cwd" | b"-save-temps=obj" | b"--save-temps"
            | b"--save-temps=cwd" | b"--save-temps=obj" => {
                return Some(Uncacheable("c-save-temps"))
            }
            _ if bytes.first() == Some(&b'@') => argfile = true,
            _ if WITH_SEPARATE_VALUE.contains(&bytes) => {
                if bytes == b"-x" {
                    language_given = true;
                }
                iter.next();
            }
            _ if bytes.starts_with(b"-x") => language_given = true,
            _ if bytes.first() == Some(&b'-') => {}
            _ => {
                inputs += 1;
                input = Some(arg);
            }
        }
    }
    if argfile {
        // `-c` or the input may be in the file.
        return None;
    }
    if !compile {
        // Linking, or a probe such as `cc --version`.
        return Some(Uncacheable("c-not-compile"));
    }
    match (inputs, input) {
        (0, _) | (_, None) => Some(Uncacheable("c-no-input")),
        (1, Some(input)) if !language_given && !known_language(Path::new(input)) => {
            Some(Uncacheable("c-unknown-language"))
        }
        (1, _) => None,
        _ => Some(Uncacheable("c-multiple-inputs")),
    }
}

/// Extensions sccache 0.16 knows a language for (`Language::from_file_name`).
fn known_language(input: &Path) -> bool {
    let Some(ext) = input.extension().and_then(|e| e.to_str()) else {
        return false;
    };
    matches!(
        ext,
        "s" | "S"
            | "sx"
            | "c"
            | "h"
            | "i"
            | "C"
            | "cc"
            | "cp"
            | "cpp"
            | "CPP"
            | "cxx"
            | "c++"
            | "ii"
            | "H"
            | "hh"
            | "hp"
            | "hpp"
            | "HPP"
            | "hxx"
            | "h++"
            | "tcc"
            | "cppm"
            | "ixx"
            | "m"
            | "mi"
            | "M"
            | "mm"
            | "mii"
            | "cu"
            | "ptx"
            | "cubin"
            | "rs"
            | "hip"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(args: &str) -> Option<&'static str> {
        let args: Vec<OsString> = args.split_whitespace().map(OsString::from).collect();
        uncacheable(&args).map(|u| u.0)
    }

    /// How cc-rs 1.2 compiles one file.
    const CC_RS: &str =
        "-O0 -ffunction-sections -fdata-sections -fPIC -gdwarf-4 -fno-omit-frame-pointer \
        -m64 -I include -Wall -Wextra -DFOO=1 -o /t/out/abc-hello.o -c src/hello.c";

    #[test]
    fn cc_rs_compile_is_cacheable() {
        assert_eq!(check(CC_RS), None);
        assert_eq!(check("-c foo.cpp -o foo.o -MD -MF foo.d -MT foo.o"), None);
        assert_eq!(check("-x c -c weird.inc -o w.o"), None);
        assert_eq!(check("-xc++ -c weird.inc -o w.o"), None);
        assert_eq!(check("-c -include pre.h -isystem /usr/x a.S"), None);
        assert_eq!(check("@/t/args"), None, "argfiles are expanded by sccache");
        assert_eq!(check("-c -- a.c"), None);
    }

    #[test]
    fn never_cached_calls() {
        assert_eq!(check("foo.o bar.o -o app -lm"), Some("c-not-compile"));
        assert_eq!(check("--version"), Some("c-not-compile"));
        assert_eq!(check("-S foo.c"), Some("c-not-compile"));
        assert_eq!(check("-E foo.c"), Some("c-preprocess"));
        assert_eq!(check(&format!("{CC_RS} -E")), Some("c-preprocess"));
        assert_eq!(check("-c -M foo.c"), Some("c-preprocess"));
        assert_eq!(check("-c -MM foo.c"), Some("c-preprocess"));
        assert_eq!(check("-c -fsyntax-only foo.c"), Some("c-syntax-only"));
        assert_eq!(check("-c -save-temps foo.c"), Some("c-save-temps"));
        assert_eq!(check("-c -x c -"), Some("c-stdin"));
        assert_eq!(check("-c a.c b.c"), Some("c-multiple-inputs"));
        assert_eq!(check("-c -o x.o"), Some("c-no-input"));
        assert_eq!(check("-c foo.xyz"), Some("c-unknown-language"));
        assert_eq!(check("-E @/t/args"), Some("c-preprocess"));
    }

    /// `-x LANG` (and only `-x`) names the language of an input whose extension does not.
    #[test]
    fn only_dash_x_gives_the_language() {
        assert_eq!(check("-x c -o /t/a.o -c src/a.inc"), None);
        assert_eq!(check("-o /t/a.o -c src/a.inc"), Some("c-unknown-language"));
    }
}
