//! The cl/clang-cl room: whether sccache could ever cache a call of an MSVC-style driver.
//!
//! Only the clearest of sccache 0.16's rules (`src/compiler/msvc.rs`) are modelled: a call without
//! `/c` (or `-c`) is not a compile (a link or a probe), and `/E`, `/EP` and `/P` preprocess. The
//! rest is forwarded, and sccache decides.

use std::ffi::OsString;

use super::Uncacheable;

pub fn uncacheable(args: &[OsString]) -> Option<Uncacheable> {
    let mut compile = false;
    for arg in args {
        let bytes = arg.as_encoded_bytes();
        if bytes.first() == Some(&b'@') {
            // sccache reads response files; `/c` may be in one.
            return None;
        }
        let Some(option) = bytes
            .strip_prefix(b"/")
            .or_else(|| bytes.strip_prefix(b"-"))
        else {
            continue;
        };
        match option {
            b"c" => compile = true,
            b"E" | b"EP" | b"P" => return Some(Uncacheable("c-preprocess")),
            _ => {}
        }
    }
    (!compile).then_some(Uncacheable("c-not-compile"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(args: &str) -> Option<&'static str> {
        let args: Vec<OsString> = args.split_whitespace().map(OsString::from).collect();
        uncacheable(&args).map(|u| u.0)
    }

    #[test]
    fn rules() {
        assert_eq!(check("-nologo -MD -O2 -Brepro -c -Fofoo.o foo.c"), None);
        assert_eq!(check("/nologo /c foo.c /Fofoo.obj"), None);
        assert_eq!(check("foo.obj /link /out:app.exe"), Some("c-not-compile"));
        assert_eq!(check("/E foo.c"), Some("c-preprocess"));
        assert_eq!(check("-c -EP foo.c"), Some("c-preprocess"));
        assert_eq!(check("@args.rsp"), None);
    }
}
