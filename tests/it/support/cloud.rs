//! Test-owned cloud backends on 127.0.0.1: azurite's blob server and the GitHub Actions cache
//! service of `tests/it/servers/gha_cache.py` in front of it, with sccache's environment for
//! each. Used by `ci_backends` (faults at start) and `cloud_midbuild` (faults mid-build).

use std::fs;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

pub fn servers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/servers")
}

/// azurite's blob server: `MAYBE_SCCACHE_TEST_AZURITE`, else where `.ci/run` installs it, else
/// `PATH`. `None` (after saying why) to skip; a failure with CI set.
pub fn require_azurite(test: &str) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(given) = std::env::var_os("MAYBE_SCCACHE_TEST_AZURITE") {
        if !given.is_empty() {
            let given = PathBuf::from(given);
            assert!(
                given.is_file(),
                "MAYBE_SCCACHE_TEST_AZURITE={} is not a file",
                given.display()
            );
            return Some(given);
        }
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    if let Some(cache) = cache {
        candidates.push(cache.join("maybe-sccache-ci/npm/node_modules/.bin/azurite-blob"));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("azurite-blob")));
    }
    if let Some(found) = candidates.into_iter().find(|p| p.is_file()) {
        return Some(found);
    }
    assert!(
        !in_ci(),
        "{test}: azurite-blob is required in CI but was not found (.ci/run installs it)"
    );
    eprintln!("skipping {test}: azurite-blob not found (set MAYBE_SCCACHE_TEST_AZURITE)");
    None
}

pub fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not come up on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process in its own process group, killed (the group) when dropped.
pub struct Server {
    child: Child,
}

impl Server {
    pub fn spawn(cmd: &mut Command, log: &Path) -> Server {
        let log = fs::File::create(log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Server { child }
    }
}

impl Server {
    /// Kills the process group now (a backend killed mid-build); dropping it later is harmless.
    pub fn kill(&mut self) {
        // SAFETY: signalling the process group this test started.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// azurite on a free port with its data in `dir`.
pub struct Azurite {
    pub server: Server,
    pub port: u16,
}

impl Azurite {
    pub fn start(program: &Path, dir: &Path) -> Azurite {
        let port = reserve_port();
        let data = dir.join("azurite");
        fs::create_dir_all(&data).unwrap();
        let server = Server::spawn(
            Command::new(program)
                .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
                .arg("--location")
                .arg(&data)
                .args(["--skipApiVersionCheck", "--loose", "--silent"]),
            &dir.join("azurite.log"),
        );
        wait_for_port(port, "azurite");
        Azurite { server, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn create_container(&self, name: &str) {
        let out = Command::new("python3")
            .arg(servers_dir().join("azure_sas.py"))
            .args(["create-container", &self.url(), name])
            .stdin(Stdio::null())
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "cannot create container {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The test-owned GitHub Actions cache service in front of `azurite`.
pub struct GhaService {
    pub server: Server,
    pub port: u16,
    control: PathBuf,
}

impl GhaService {
    pub fn start(azurite: &Azurite, dir: &Path) -> GhaService {
        let ready = dir.join("gha-ready.json");
        let control = dir.join("gha-control.json");
        fs::write(&control, "{}").unwrap();
        let server = Server::spawn(
            Command::new("python3")
                .arg(servers_dir().join("gha_cache.py"))
                .arg("--azurite")
                .arg(azurite.url())
                .arg("--ready")
                .arg(&ready)
                .arg("--control")
                .arg(&control),
            &dir.join("gha.log"),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = loop {
            if let Ok(text) = fs::read_to_string(&ready) {
                let json = json_from_str(&text).unwrap();
                break json.path(&["service"]).and_then(Json::as_u64).unwrap() as u16;
            }
            assert!(
                Instant::now() < deadline,
                "the GHA cache service did not start: {}",
                fs::read_to_string(dir.join("gha.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        GhaService {
            server,
            port,
            control,
        }
    }

    /// Sets how the service and the blob store behave (see gha_cache.py).
    pub fn control(&self, service: &str, blob: &str) {
        let tmp = self.control.with_extension("tmp");
        fs::write(
            &tmp,
            format!("{{\"service\": \"{service}\", \"blob\": \"{blob}\"}}"),
        )
        .unwrap();
        fs::rename(&tmp, &self.control).unwrap();
        // The service re-reads its control file every 50 ms.
        std::thread::sleep(Duration::from_millis(300));
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

/// A JWT-shaped runtime token that expires in 2100 (`{"exp":4102444800}`).
pub const TOKEN: &str = "eyJhbGciOiJub25lIn0.eyJleHAiOjQxMDI0NDQ4MDB9.c2ln";

pub fn gha_env(sb: &mut Sandbox, results_url: &str) {
    sb.set_env("SCCACHE_GHA_ENABLED", "true")
        .set_env("ACTIONS_CACHE_SERVICE_V2", "on")
        .set_env("ACTIONS_RESULTS_URL", results_url)
        .set_env("ACTIONS_RUNTIME_TOKEN", TOKEN);
}

/// azurite's well-known development account, with `endpoint` as its blob endpoint.
pub fn azure_env(sb: &mut Sandbox, endpoint: &str) {
    sb.set_env(
        "SCCACHE_AZURE_CONNECTION_STRING",
        format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;\
             AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;\
             BlobEndpoint={endpoint}/devstoreaccount1;"
        ),
    )
    .set_env("SCCACHE_AZURE_BLOB_CONTAINER", "sccache");
}

/// A cargo build of the fixture with `wrapper` as `RUSTC_WRAPPER` (`None`: plain cargo) into its
/// own target directory; the run and its wall time.
pub fn timed(sb: &Sandbox, wrapper: Option<&Path>, target: &str) -> (Run, Duration) {
    let mut cmd = sb.cargo(&["build", "--offline"]);
    cmd.env("CARGO_TARGET_DIR", sb.root().join(target));
    match wrapper {
        Some(w) => cmd.env("RUSTC_WRAPPER", w),
        None => cmd.env_remove("RUSTC_WRAPPER"),
    };
    let started = Instant::now();
    let r = run(&mut cmd, BUILD);
    (r, started.elapsed())
}

/// One plain build, untimed, so that the timed ones all find the toolchain in the page cache.
pub fn warm_up(sb: &Sandbox) {
    let (r, _) = timed(sb, None, "target-warm-up");
    r.assert_success();
}
