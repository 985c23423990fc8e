//! Writing files, scripts and FIFOs, quoting paths for `/bin/sh`, and counting text in output.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A FIFO at `path`, which nobody reads unless the test opens it.
#[cfg(unix)]
pub fn make_fifo(path: &Path) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    let made = unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) };
    assert_eq!(made, 0, "mkfifo {}", path.display());
}

/// Quotes a path for a `/bin/sh` script.
pub fn sh_quote(s: &OsStr) -> String {
    let s = String::from_utf8(s.as_bytes().to_vec()).expect("sandbox paths are UTF-8");
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub fn write_file(path: &Path, contents: impl AsRef<[u8]>, mode: u32) {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).unwrap();
    }
    fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Writes 4 KiB of deterministic garbage (neither `#!` nor ELF) with mode 0755.
pub fn write_garbage(path: &Path) {
    let mut x: u32 = 0x1234_5678;
    let mut bytes = vec![0u8, 0x13, 0x37, 0x00];
    while bytes.len() < 4096 {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        bytes.push((x >> 24) as u8);
    }
    write_file(path, bytes, 0o755);
}

/// Writes an executable `/bin/sh` script.
pub fn write_script(path: &Path, body: &str) {
    write_file(path, format!("#!/bin/sh\n{body}"), 0o755);
}

/// How many times `needle` occurs in `haystack`.
pub fn count(haystack: &[u8], needle: &str) -> usize {
    let needle = needle.as_bytes();
    if needle.is_empty() || haystack.len() < needle.len() {
        return 0;
    }
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}
