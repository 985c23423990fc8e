//! Calls into the C library, so it is really compiled and linked.

fn main() {
    // SAFETY: a plain query of the library's version, no pointers involved.
    let version = unsafe { lz4_sys::LZ4_versionNumber() };
    println!("lz4 {version}");
}
