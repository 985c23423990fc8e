//! The fixture workspaces (the five-crate one with its known output and warnings, and a chain or
//! fan of `n` libraries), building them, and the one-file `victim.rs` call.

use std::ffi::OsString;
use std::fs;
use std::path::Path;

use super::{count, run, write_file, Run, Sandbox, SHORT};

/// What the fixture's binary prints when the lib chain, the proc-macro and the build script all
/// did their job: a = (c=7) * 3 + 1 = 22, the proc-macro expands to 42, the build script sets
/// an env var read by `env!`.
pub const APP_OUTPUT: &str = "a=22 pm=42 build=from-build-rs\n";

/// Library crates of the fixture that sccache can cache: a, b, c and withbuild.
pub const LIB_CRATES: u64 = 4;

/// The text of the rustc warning the fixture's `c` crate triggers.
pub const RUSTC_WARNING: &str = "unused variable: `unused_thing`";

/// The text of the clippy warning the fixture's `c` crate triggers (`clippy::needless_return`).
pub const CLIPPY_WARNING: &str = "unneeded `return` statement";

/// Which fixture workspace to write.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Fixture {
    /// Builds; `app` prints [`APP_OUTPUT`].
    Good,
    /// `c` has a type error (`error[E0308]`).
    TypeError,
}

impl Sandbox {
    /// Runs the fixture's binary and returns what it printed.
    pub fn app_output(&self) -> String {
        let app = self.target.join("debug").join("app");
        let r = run(&mut self.command(&app), SHORT);
        r.assert_success();
        r.out()
    }

    pub fn assert_app_output(&self) {
        assert_eq!(
            self.app_output(),
            APP_OUTPUT,
            "the fixture's binary printed the wrong thing"
        );
    }

    /// A passing build of the good fixture: no sccache or shim text, the fixture's warning
    /// exactly once, a working binary.
    pub fn assert_good_build(&self) -> Run {
        self.write_fixture(Fixture::Good);
        let r = self.build();
        r.assert_success().assert_no_shim_noise();
        assert_eq!(
            count(&r.stderr, RUSTC_WARNING),
            1,
            "the fixture's warning must be shown exactly once: {}",
            r.describe()
        );
        self.assert_app_output();
        r
    }

    /// A library call of `compiler` (a real rustc, or a wrapper of one) on a one-line
    /// `victim.rs` in the workspace, through the shim, with a fresh output directory.
    pub fn victim_call(&self, compiler: &Path, extra: &[OsString]) -> Run {
        write_file(
            &self.ws.join("victim.rs"),
            "pub fn f() -> u32 { 1 }\n",
            0o644,
        );
        let out_dir = self.data.join("out");
        let _ = fs::remove_dir_all(&out_dir);
        fs::create_dir_all(&out_dir).unwrap();
        let mut args: Vec<OsString> = vec![compiler.as_os_str().to_owned()];
        args.extend(cacheable_args("victim.rs", &out_dir));
        args.extend_from_slice(extra);
        let mut cmd = self.shim(args);
        cmd.current_dir(&self.ws);
        run(&mut cmd, SHORT)
    }

    /// Writes the fixture workspace into `self.ws`.
    pub fn write_fixture(&self, fixture: Fixture) {
        let ws = &self.ws;
        let w = |rel: &str, text: &str| write_file(&ws.join(rel), text, 0o644);
        w(
            "Cargo.toml",
            "[workspace]\n\
             members = [\"a\", \"b\", \"c\", \"pm\", \"withbuild\", \"app\"]\n\
             resolver = \"2\"\n\n\
             [profile.dev]\n\
             debug = 0\n",
        );
        let manifest = |name: &str, extra: &str, deps: &str| {
            format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
                 publish = false\n{extra}\n[dependencies]\n{deps}"
            )
        };
        w("c/Cargo.toml", &manifest("c", "", ""));
        let c_value = match fixture {
            Fixture::Good => "7",
            Fixture::TypeError => "\"seven\"",
        };
        w(
            "c/src/lib.rs",
            &format!(
                "pub fn c_value() -> u32 {{\n    {c_value}\n}}\n\n\
                 /// Triggers clippy::needless_return (a warning), nothing in rustc.\n\
                 pub fn lint_me() -> u32 {{\n    return 1;\n}}\n\n\
                 /// Triggers rustc's unused_variables warning.\n\
                 pub fn warn_me() -> u32 {{\n    let unused_thing = 1;\n    2\n}}\n"
            ),
        );
        w(
            "b/Cargo.toml",
            &manifest("b", "", "c = { path = \"../c\" }\n"),
        );
        w(
            "b/src/lib.rs",
            "pub fn b_value() -> u32 {\n    c::c_value() * 3\n}\n",
        );
        w(
            "a/Cargo.toml",
            &manifest("a", "", "b = { path = \"../b\" }\n"),
        );
        w(
            "a/src/lib.rs",
            "pub fn a_value() -> u32 {\n    b::b_value() + 1\n}\n",
        );
        w(
            "pm/Cargo.toml",
            &manifest("pm", "\n[lib]\nproc-macro = true\n", ""),
        );
        w(
            "pm/src/lib.rs",
            "use proc_macro::TokenStream;\n\n\
             #[proc_macro]\n\
             pub fn forty_two(_input: TokenStream) -> TokenStream {\n    \
                 \"42u32\".parse().unwrap()\n}\n",
        );
        w(
            "withbuild/Cargo.toml",
            &manifest("withbuild", "build = \"build.rs\"\n", ""),
        );
        w(
            "withbuild/build.rs",
            "fn main() {\n    \
                 println!(\"cargo:rerun-if-changed=build.rs\");\n    \
                 println!(\"cargo:rustc-env=FIXTURE_BUILD_VALUE=from-build-rs\");\n}\n",
        );
        w(
            "withbuild/src/lib.rs",
            "pub const BUILD_VALUE: &str = env!(\"FIXTURE_BUILD_VALUE\");\n",
        );
        w(
            "app/Cargo.toml",
            &manifest(
                "app",
                "",
                "a = { path = \"../a\" }\npm = { path = \"../pm\" }\n\
                 withbuild = { path = \"../withbuild\" }\n",
            ),
        );
        w(
            "app/src/main.rs",
            "fn main() {\n    \
                 println!(\"a={} pm={} build={}\", a::a_value(), pm::forty_two!(), \
                 withbuild::BUILD_VALUE);\n}\n",
        );
    }
}

/// The fixture with a type error: cargo fails with 101 and the error is shown exactly once.
pub fn assert_compile_error_once(sb: &Sandbox) {
    sb.write_fixture(Fixture::TypeError);
    let r = sb.build();
    assert_eq!(r.code(), Some(101), "{}", r.describe());
    assert_eq!(
        count(&r.stderr, "error[E0308]"),
        1,
        "the compile error must appear exactly once: {}",
        r.describe()
    );
    for needle in ["sccache:", "SCCACHE_LOG", "panicked"] {
        assert_eq!(
            count(&r.all(), needle),
            0,
            "{needle:?} in: {}",
            r.describe()
        );
    }
}

/// Arguments of a call sccache 0.16 would cache, shaped like cargo's for a library crate.
pub fn cacheable_args(input: &str, out_dir: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--crate-name",
        "victim",
        "--edition=2021",
        input,
        "--error-format=json",
        "--crate-type",
        "lib",
        "--emit=dep-info,metadata,link",
        "-C",
        "embed-bitcode=no",
        "-C",
        "metadata=0123456789abcdef",
        "--out-dir",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.push(out_dir.as_os_str().to_owned());
    args
}

/// Writes a workspace of `n` library crates into `ws`. With `chain`, crate `k` depends on `k-1`
/// (a `-j1`-like critical path); without, they are independent (all can build at once). A bin
/// `app` depends on the last (or all) and prints the sum it computed through them.
pub fn write_libs(ws: &Path, n: usize, chain: bool) -> String {
    let mut members = Vec::new();
    for k in 1..=n {
        let name = format!("l{k}");
        let dir = ws.join(&name);
        fs::create_dir_all(dir.join("src")).unwrap();
        let mut deps = String::new();
        let body = if chain && k > 1 {
            deps.push_str(&format!("l{} = {{ path = \"../l{}\" }}\n", k - 1, k - 1));
            format!("pub fn v() -> u64 {{ l{}::v() + {k} }}\n", k - 1)
        } else {
            format!("pub fn v() -> u64 {{ {k} }}\n")
        };
        fs::write(
            dir.join("Cargo.toml"),
            format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
                 [dependencies]\n{deps}"
            ),
        )
        .unwrap();
        fs::write(dir.join("src/lib.rs"), body).unwrap();
        members.push(format!("\"{name}\""));
    }
    let app = ws.join("app");
    fs::create_dir_all(app.join("src")).unwrap();
    let (deps, expr): (Vec<String>, String) = if chain {
        (
            vec![format!("l{n} = {{ path = \"../l{n}\" }}")],
            format!("l{n}::v()"),
        )
    } else {
        (
            (1..=n)
                .map(|k| format!("l{k} = {{ path = \"../l{k}\" }}"))
                .collect(),
            (1..=n)
                .map(|k| format!("l{k}::v()"))
                .collect::<Vec<_>>()
                .join(" + "),
        )
    };
    fs::write(
        app.join("Cargo.toml"),
        format!(
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [dependencies]\n{}\n",
            deps.join("\n")
        ),
    )
    .unwrap();
    fs::write(
        app.join("src/main.rs"),
        format!("fn main() {{ println!(\"sum={{}}\", {expr}); }}\n"),
    )
    .unwrap();
    members.push("\"app\"".into());
    fs::write(
        ws.join("Cargo.toml"),
        format!(
            "[workspace]\nmembers = [{}]\nresolver = \"2\"\n",
            members.join(", ")
        ),
    )
    .unwrap();
    format!("sum={}\n", n * (n + 1) / 2)
}

pub fn assert_app_prints(sb: &Sandbox, expected: &str) {
    let app = sb.target.join("debug").join("app");
    let r = run(&mut sb.command(&app), SHORT);
    r.assert_success();
    assert_eq!(
        r.out(),
        expected,
        "the app built from the libs printed the wrong sum"
    );
}
