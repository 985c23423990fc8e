//! The floor for any wrapper binary: exec argv[1..] and nothing else (built by the benchmark, in
//! examples/bench/sandbox.rs).
use std::os::unix::process::CommandExt;
fn main() {
    let mut args = std::env::args_os().skip(1);
    let err = std::process::Command::new(args.next().expect("usage: floor PROGRAM [ARGS...]"))
        .args(args)
        .exec();
    eprintln!("floor: {err}");
    std::process::exit(127);
}
