//! Section 3c: the GitHub Actions cache service and Azure Blob failing, on the chain of section
//! 3b, against azurite and the test-owned v2 cache service (`tests/it/servers/gha_cache.py`,
//! whose signed URLs point at azurite). Each fault is measured three ways: the shim with
//! sccache, sccache alone as `RUSTC_WRAPPER` (stopped at a bounded time, since black-holed
//! mid-build one of its calls waits for minutes) and plain cargo.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use std::{fs, thread};

use crate::backends::{BProxy, CHAIN_CRATES, CHAIN_STRUCTS};
use crate::measure::{count_libs, median, Build, Lane, Outcome, Project};
use crate::per_call::Who;
use crate::procs::{free_port, Server};
use crate::sandbox::{find_on_path, mkdir, Bench};
use crate::Res;

/// A JWT-shaped runtime token that expires in 2100: the service never checks it, the shim reads
/// its expiry.
const TOKEN: &str = "eyJhbGciOiJub25lIn0.eyJleHAiOjQxMDI0NDQ4MDB9.c2ln";
/// azurite's well-known development account key (public, in azurite's documentation).
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// How long sccache alone may take over one faulty build.
const ALONE_LIMIT: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Row {
    AzureBlackHoledMid,
    GhaBlackHoledMid,
    GhaRefusedAtStart,
    GhaUnresolvableAtStart,
    GhaBlackHoledAtStart,
    GhaWriteStorm,
    AzureRefusedAtStart,
    GcsRefusedProxyAtStart,
    GcsBlackHoledProxyAtStart,
}

impl Row {
    const ALL: [Row; 9] = [
        Row::AzureBlackHoledMid,
        Row::GhaBlackHoledMid,
        Row::GhaRefusedAtStart,
        Row::GhaUnresolvableAtStart,
        Row::GhaBlackHoledAtStart,
        Row::GhaWriteStorm,
        Row::AzureRefusedAtStart,
        Row::GcsRefusedProxyAtStart,
        Row::GcsBlackHoledProxyAtStart,
    ];

    fn backend(self) -> &'static str {
        match self {
            Row::AzureBlackHoledMid | Row::AzureRefusedAtStart => "Azure",
            Row::GcsRefusedProxyAtStart | Row::GcsBlackHoledProxyAtStart => "GCS",
            _ => "GHA",
        }
    }

    fn fault(self) -> &'static str {
        match self {
            Row::AzureBlackHoledMid | Row::GhaBlackHoledMid => "black-holed mid-build",
            Row::GhaRefusedAtStart => "refused at start",
            Row::GhaUnresolvableAtStart => "unresolvable at start (`.invalid`)",
            Row::GhaBlackHoledAtStart => "black-holed at start",
            Row::GhaWriteStorm => "429 on every write (a storm)",
            Row::AzureRefusedAtStart => "refused at start",
            Row::GcsRefusedProxyAtStart => "its HTTPS proxy refusing at start",
            Row::GcsBlackHoledProxyAtStart => "its HTTPS proxy black-holed at start",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Row::AzureBlackHoledMid => "azure-hole-mid",
            Row::GhaBlackHoledMid => "gha-hole-mid",
            Row::GhaRefusedAtStart => "gha-refused",
            Row::GhaUnresolvableAtStart => "gha-invalid",
            Row::GhaBlackHoledAtStart => "gha-hole-start",
            Row::GhaWriteStorm => "gha-429",
            Row::AzureRefusedAtStart => "azure-refused",
            Row::GcsRefusedProxyAtStart => "gcs-proxy-refused",
            Row::GcsBlackHoledProxyAtStart => "gcs-proxy-hole",
        }
    }

    fn mid_build(self) -> bool {
        matches!(self, Row::AzureBlackHoledMid | Row::GhaBlackHoledMid)
    }
}

#[derive(Default)]
pub(crate) struct CloudFaults {
    pub(crate) plain: Vec<f64>,
    pub(crate) rows: Vec<(Row, Build, Build)>,
    pub(crate) skipped: Vec<String>,
    pub(crate) alone_limit: u64,
    /// Healthy and warm, per backend: the shim's and sccache alone's build times.
    pub(crate) healthy: Vec<(&'static str, Vec<f64>, Vec<f64>)>,
    /// The write storm in rounds: on the chain of section 3b, then on crates of some size.
    pub(crate) storms: Vec<Storm>,
}

/// A GHA write storm from the start, in rounds: per round, one plain build and one through the
/// shim (a fresh service, server and shim state: the storm's onset, as in every CI job that
/// starts into one); sccache alone once.
pub(crate) struct Storm {
    /// Derived structs per crate of the chain built.
    pub(crate) structs: usize,
    pub(crate) plain: Vec<f64>,
    pub(crate) shim: Vec<f64>,
    pub(crate) alone: Build,
}

/// Derived structs per crate for the storm on crates of some size: a build of several seconds,
/// where a fixed cost of the storm's onset weighs as it does in a real project.
const SIZED_STRUCTS: usize = 600;

/// What one build talks to: azurite, the GHA service in front of it, a proxy; all stopped when
/// dropped.
struct Rig {
    _azurite: Option<Server>,
    _gha: Option<Server>,
    proxy: Option<BProxy>,
    env: Vec<(String, String)>,
}

impl Bench {
    /// The rows on `project` (the chain of section 3b); `plain` holds that section's plain
    /// builds, or is empty and then plain builds are made here.
    pub(crate) fn section_cloud(&mut self, project: &Project, plain: &[f64]) -> Res<CloudFaults> {
        let mut out = CloudFaults {
            // `--quick` goes through the code paths, not the figures: a short cap will do.
            alone_limit: if self.opts.quick {
                30
            } else {
                ALONE_LIMIT.min(self.opts.timeout).as_secs()
            },
            ..CloudFaults::default()
        };
        let Some(azurite) = find_azurite() else {
            out.skipped.push(
                "azurite-blob was not found (MAYBE_SCCACHE_TEST_AZURITE; `. tests/setup.sh` \
                 installs it)"
                    .into(),
            );
            return Ok(out);
        };
        say!("section 3c: the GitHub Actions cache and Azure Blob");
        out.plain = plain.to_vec();
        if out.plain.is_empty() {
            for _ in 0..if self.opts.quick { 1 } else { 3 } {
                let b = self.build(
                    "cloud plain",
                    project,
                    &Lane::Plain,
                    self.opts.timeout,
                    None,
                )?;
                self.expect_pass("chain plain build", &b);
                out.plain.push(b.secs);
            }
        }
        for row in Row::ALL {
            let mut shim_and_alone = Vec::new();
            for who in [Who::ShimSccache, Who::Sccache] {
                let b = self.cloud_build(project, row, who, &azurite, out.alone_limit)?;
                if who == Who::ShimSccache {
                    self.expect_pass(&format!("chain, {} {}", row.backend(), row.fault()), &b);
                }
                shim_and_alone.push(b);
            }
            let alone = shim_and_alone.pop().ok_or("no build")?;
            let shim = shim_and_alone.pop().ok_or("no build")?;
            out.rows.push((row, shim, alone));
        }
        for row in [Row::AzureBlackHoledMid, Row::GhaBlackHoledMid] {
            let (shim, alone) = self.healthy_warm(project, row, &azurite)?;
            out.healthy.push((row.backend(), shim, alone));
        }
        // A single build of the small chain scatters by about ±0.2 s, more than the storm's
        // cost: the rounds measure it on that chain too, not only on the sized one.
        let rounds = if self.opts.quick { 1 } else { 7 };
        let small = self.storm_rounds(project, CHAIN_STRUCTS, rounds, &azurite, out.alone_limit)?;
        out.storms.push(small);
        let sized = self.sized_chain_project("chain-sized", SIZED_STRUCTS)?;
        let rounds = if self.opts.quick { 1 } else { 5 };
        let storm = self.storm_rounds(&sized, SIZED_STRUCTS, rounds, &azurite, out.alone_limit);
        let _ = fs::remove_dir_all(&sized.target);
        out.storms.push(storm?);
        Ok(out)
    }

    /// The write storm on `project` (a chain of `structs`-struct crates) in `rounds` rounds,
    /// plain and shim alternating which goes first; each round's ratio is its shim build over
    /// its plain build.
    fn storm_rounds(
        &mut self,
        project: &Project,
        structs: usize,
        rounds: usize,
        azurite: &Path,
        alone_limit: u64,
    ) -> Res<Storm> {
        let (mut plain, mut shim) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let lanes = if round % 2 == 0 {
                [Who::Rustc, Who::ShimSccache]
            } else {
                [Who::ShimSccache, Who::Rustc]
            };
            for who in lanes {
                if who == Who::Rustc {
                    let b = self.build(
                        &format!("GHA storm, {structs} structs: plain"),
                        project,
                        &Lane::Plain,
                        self.opts.timeout,
                        None,
                    )?;
                    self.expect_pass(&format!("{structs}-struct chain, plain"), &b);
                    plain.push(b.secs);
                    continue;
                }
                let b = self.cloud_build(project, Row::GhaWriteStorm, who, azurite, alone_limit)?;
                self.expect_pass(
                    &format!("{structs}-struct chain, GHA 429 on every write"),
                    &b,
                );
                shim.push(b.secs);
            }
        }
        let alone = self.cloud_build(
            project,
            Row::GhaWriteStorm,
            Who::Sccache,
            azurite,
            alone_limit,
        )?;
        Ok(Storm {
            structs,
            plain,
            shim,
            alone,
        })
    }

    /// `row`'s backend left healthy: one cold build through sccache alone fills it, then warm
    /// builds (a fresh target dir, the cache full) alternate between sccache alone and the shim,
    /// each lane with a server of its own on the same backend.
    fn healthy_warm(
        &mut self,
        project: &Project,
        row: Row,
        azurite: &Path,
    ) -> Res<(Vec<f64>, Vec<f64>)> {
        let what = format!("cloud-healthy-{}", row.slug());
        let rig = self.rig(row, azurite, &what)?;
        let mut alone_sc = self.new_sc(&format!("{what}-alone"), None)?;
        alone_sc.extra = rig.env.clone();
        let mut shim_sc = self.new_sc(&format!("{what}-shim"), None)?;
        shim_sc.extra = rig.env.clone();
        let state = self.new_state(&what)?;
        let label = format!("{} healthy", row.backend());
        let cold = self.build(
            &format!("{label} cold fill"),
            project,
            &Lane::Sccache(&alone_sc),
            self.opts.timeout,
            None,
        )?;
        self.expect_pass(&format!("{label}, cold fill"), &cold);
        let (mut shim, mut alone) = (Vec::new(), Vec::new());
        // The lane that builds right after the other one measured up to 7 % slower on this
        // machine (the same lane, swapped places, moved by as much), so the order alternates:
        // each lane goes first in half of the rounds.
        for round in 0..if self.opts.quick { 2 } else { 12 } {
            let lanes = if round % 2 == 0 {
                [Who::Sccache, Who::ShimSccache]
            } else {
                [Who::ShimSccache, Who::Sccache]
            };
            for who in lanes {
                let (lane, times, name) = match who {
                    Who::Sccache => (Lane::Sccache(&alone_sc), &mut alone, "sccache alone"),
                    _ => (
                        Lane::Shim {
                            sc: Some(&shim_sc),
                            state: state.clone(),
                        },
                        &mut shim,
                        "shim",
                    ),
                };
                let b = self.build(
                    &format!("{label} warm: {name}"),
                    project,
                    &lane,
                    self.opts.timeout,
                    None,
                )?;
                self.expect_pass(&format!("{label}, warm, {name}"), &b);
                times.push(b.secs);
            }
        }
        drop(rig);
        Ok((shim, alone))
    }

    fn cloud_build(
        &mut self,
        project: &Project,
        row: Row,
        who: Who,
        azurite: &Path,
        alone_limit: u64,
    ) -> Res<Build> {
        let what = format!("cloud-{}-{}", row.slug(), who.slug());
        let rig = self.rig(row, azurite, &what)?;
        let mut sc = self.new_sc(&what, None)?;
        sc.extra = rig.env.clone();
        let lane = match who {
            Who::Sccache => Lane::Sccache(&sc),
            _ => Lane::Shim {
                sc: Some(&sc),
                state: self.new_state(&what)?,
            },
        };
        let limit = match who {
            Who::Sccache => Duration::from_secs(alone_limit),
            _ => self.opts.timeout,
        };
        let deps = project.target.join("debug").join("deps");
        let threshold = project.kill_after;
        let proxy = rig.proxy.as_ref();
        let mut watch = |_: Duration| -> bool {
            if count_libs(&deps) < threshold {
                return false;
            }
            if let Some(p) = proxy {
                p.black_hole();
            }
            true
        };
        let label = format!("{} {}: {}", row.backend(), row.fault(), who.slug());
        let b = self.build(
            &label,
            project,
            &lane,
            limit,
            if row.mid_build() {
                Some(&mut watch)
            } else {
                None
            },
        )?;
        drop(rig);
        Ok(b)
    }

    /// The servers and sccache's environment for one build of `row`.
    fn rig(&self, row: Row, azurite: &Path, what: &str) -> Res<Rig> {
        let mut rig = Rig {
            _azurite: None,
            _gha: None,
            proxy: None,
            env: Vec::new(),
        };
        let results_url = match row {
            Row::AzureRefusedAtStart => {
                rig.env = azure_env(free_port()?);
                return Ok(rig);
            }
            Row::GcsRefusedProxyAtStart | Row::GcsBlackHoledProxyAtStart => {
                // sccache has no endpoint override for GCS: its client goes to Google's host
                // through the proxy, which here refuses or never answers.
                let port = if row == Row::GcsRefusedProxyAtStart {
                    free_port()?
                } else {
                    let p = BProxy::to(free_port()?)?;
                    p.black_hole();
                    let port = p.port;
                    rig.proxy = Some(p);
                    port
                };
                rig.env = vec![
                    ("SCCACHE_GCS_BUCKET".into(), "maybe-sccache-bench".into()),
                    ("SCCACHE_GCS_RW_MODE".into(), "READ_WRITE".into()),
                    ("HTTPS_PROXY".into(), format!("http://127.0.0.1:{port}")),
                ];
                return Ok(rig);
            }
            Row::GhaRefusedAtStart => format!("http://127.0.0.1:{}/", free_port()?),
            Row::GhaUnresolvableAtStart => "http://gha-cache.invalid/".into(),
            Row::GhaBlackHoledAtStart => {
                let p = BProxy::to(free_port()?)?;
                p.black_hole();
                let url = format!("http://127.0.0.1:{}/", p.port);
                rig.proxy = Some(p);
                url
            }
            Row::AzureBlackHoledMid | Row::GhaBlackHoledMid | Row::GhaWriteStorm => {
                let dir = self.scratch_path(what);
                mkdir(&dir)?;
                let az = self.start_azurite(azurite, &dir, what)?;
                let az_url = format!("http://127.0.0.1:{}", az.port);
                rig._azurite = Some(az);
                if row == Row::AzureBlackHoledMid {
                    servers_script("azure_sas.py", &["create-container", &az_url, "sccache"])?;
                    let p = BProxy::to(rig._azurite.as_ref().map_or(0, |s| s.port))?;
                    rig.env = azure_env(p.port);
                    rig.proxy = Some(p);
                    return Ok(rig);
                }
                let gha = self.start_gha(&az_url, &dir, what)?;
                if row == Row::GhaWriteStorm {
                    // The service refuses every new entry with 429, as GitHub's does past 200
                    // uploads a minute; reads still answer. It re-reads this file every 50 ms.
                    let control = dir.join("gha-control.json");
                    fs::write(&control, r#"{"service": "429-writes", "blob": "ok"}"#)
                        .map_err(|e| e.to_string())?;
                    thread::sleep(Duration::from_millis(300));
                }
                let p = BProxy::to(gha.port)?;
                rig._gha = Some(gha);
                let url = format!("http://127.0.0.1:{}/", p.port);
                rig.proxy = Some(p);
                url
            }
        };
        rig.env = vec![
            ("SCCACHE_GHA_ENABLED".into(), "true".into()),
            ("ACTIONS_CACHE_SERVICE_V2".into(), "on".into()),
            ("ACTIONS_RESULTS_URL".into(), results_url),
            ("ACTIONS_RUNTIME_TOKEN".into(), TOKEN.into()),
        ];
        Ok(rig)
    }

    fn start_azurite(&self, program: &Path, dir: &Path, id: &str) -> Res<Server> {
        let port = free_port()?;
        let mut cmd = self.command(program, &self.env_plain(), id);
        cmd.args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(dir.join("azurite"))
            .args(["--skipApiVersionCheck", "--loose", "--silent"]);
        Server::start(cmd, port, "azurite", Duration::from_secs(60))
    }

    /// The GHA service binds ports of its own choosing and names them in its ready file.
    fn start_gha(&self, azurite_url: &str, dir: &Path, id: &str) -> Res<Server> {
        let ready = dir.join("gha-ready.json");
        let control = dir.join("gha-control.json");
        fs::write(&control, "{}").map_err(|e| e.to_string())?;
        // A ready file left by the service of an earlier build in the same directory would name
        // that service's port, where nothing listens any more.
        match fs::remove_file(&ready) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.to_string()),
            _ => {}
        }
        let python = find_on_path("python3").ok_or("python3 was not found")?;
        let mut cmd = self.command(&python, &self.env_plain(), id);
        cmd.arg(servers_dir().join("gha_cache.py"))
            .arg("--azurite")
            .arg(azurite_url)
            .arg("--ready")
            .arg(&ready)
            .arg("--control")
            .arg(&control)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run gha_cache.py: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(text) = fs::read_to_string(&ready) {
                let port = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["service"].as_u64())
                    .ok_or("gha_cache.py wrote no service port")?;
                return Ok(Server::adopt(child, port as u16));
            }
            if Instant::now() > deadline {
                return Err("gha_cache.py did not start in 60 s".into());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn render_cloud(&self, r: &mut String, f: Option<&CloudFaults>) {
        let _ = writeln!(r, "## 3c. The GitHub Actions cache and Azure Blob\n");
        let Some(f) = f else {
            let _ = writeln!(r, "Not measured (see Unexpected failures).\n");
            return;
        };
        for why in &f.skipped {
            let _ = writeln!(r, "Skipped: {why}.\n");
        }
        if f.rows.is_empty() {
            return;
        }
        let plain = (!f.plain.is_empty()).then(|| median(&f.plain));
        let _ = writeln!(
            r,
            "The chain of section 3b ({CHAIN_CRATES} library crates and a binary), against \
             azurite and the test-owned v2 GitHub Actions cache service \
             (`tests/it/servers/gha_cache.py`, its signed URLs pointing at azurite), real \
             sccache, a fresh server, cache and shim state per build. *Black-holed*: a proxy \
             in front of azurite (Azure) or of the service (GHA) that accepts connections and \
             never answers; mid-build it fires once {} crates are in `target/debug/deps`. \
             *Refused*: nothing listens at `ACTIONS_RESULTS_URL`. *429 on every write*: the \
             service answers every `CreateCacheEntry` with 429 from before the first build. \
             sccache alone is stopped after {} s. Plain cargo: median of {} build(s), {}. \
             Targets (issues 16 and 18): the shim at most 35 s over plain cargo for an \
             outage, at most 1.05 × plain cargo under a write storm.\n",
            3,
            f.alone_limit,
            f.plain.len(),
            plain.map_or("n/a".into(), |p| format!("{p:.2} s")),
        );
        let _ = writeln!(
            r,
            "| backend | fault | shim with sccache | sccache alone | plain cargo | shim − plain \
             | shim ÷ plain | fault at | breaker |"
        );
        let _ = writeln!(r, "|---|---|---:|---:|---:|---:|---:|---:|---|");
        for (row, shim, alone) in &f.rows {
            let (extra, ratio) = match (shim.outcome_passed(), plain) {
                (true, Some(p)) => (
                    format!("{:+.1} s", shim.secs - p),
                    format!("{:.2} ×", shim.secs / p),
                ),
                _ => (String::new(), String::new()),
            };
            let _ = writeln!(
                r,
                "| {} | {} | {} | {} | {} | {extra} | {ratio} | {} | {} |",
                row.backend(),
                row.fault(),
                cell(shim),
                cell(alone),
                plain.map_or("n/a".into(), |p| format!("{p:.2} s")),
                shim.fired_at.map_or("-".into(), |t| format!("{t:.1} s")),
                shim.breaker.as_deref().unwrap_or("").replace('|', "\\|"),
            );
        }
        let _ = writeln!(r);
        if f.healthy.is_empty() {
            return;
        }
        let _ = writeln!(
            r,
            "Healthy and warm: one cold build through sccache alone fills the backend, then warm \
             builds (fresh target dir) alternate between sccache alone and the shim, each lane \
             first in half of the rounds, each with a server of its own on the same backend; \
             medians. Target (issue 18): the shim at \
             most 1.01 × sccache alone.\n"
        );
        let _ = writeln!(
            r,
            "| backend | builds | shim with sccache | sccache alone | shim ÷ sccache |"
        );
        let _ = writeln!(r, "|---|---:|---:|---:|---:|");
        for (backend, shim, alone) in &f.healthy {
            let (s, a) = (median(shim), median(alone));
            let _ = writeln!(
                r,
                "| {backend} | {} | {s:.2} s | {a:.2} s | {:.3} × |",
                shim.len(),
                s / a
            );
        }
        let _ = writeln!(r);
        if f.storms.is_empty() {
            return;
        }
        let _ = writeln!(
            r,
            "The write storm in rounds: the chain above ({CHAIN_STRUCTS} derived structs per \
             crate) and the same chain with {SIZED_STRUCTS}, 429 on every write from the start, \
             a fresh service, server and shim state per build (each build is a storm's onset, \
             as a CI job starting into one); plain cargo and the shim alternate which goes \
             first; the ratio is the median over rounds of the shim's build over the same \
             round's plain build. Target (issue 18): at most 1.05 × plain cargo.\n"
        );
        let _ = writeln!(
            r,
            "| structs per crate | rounds | plain cargo (median) | shim with sccache (median) \
             | shim ÷ plain | sccache alone (one build) |"
        );
        let _ = writeln!(r, "|---:|---:|---:|---:|---:|---:|");
        for storm in &f.storms {
            let ratios: Vec<f64> = storm
                .shim
                .iter()
                .zip(&storm.plain)
                .map(|(s, p)| s / p)
                .collect();
            let _ = writeln!(
                r,
                "| {} | {} | {:.2} s | {:.2} s | {:.3} × | {} |",
                storm.structs,
                ratios.len(),
                median(&storm.plain),
                median(&storm.shim),
                median(&ratios),
                cell(&storm.alone),
            );
        }
        let _ = writeln!(r);
    }
}

/// sccache's environment for Azure Blob (azurite's well-known account) at `port` on 127.0.0.1.
fn azure_env(port: u16) -> Vec<(String, String)> {
    vec![
        (
            "SCCACHE_AZURE_CONNECTION_STRING".into(),
            format!(
                "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;\
                 AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
            ),
        ),
        ("SCCACHE_AZURE_BLOB_CONTAINER".into(), "sccache".into()),
    ]
}

/// A build's time and outcome in one table cell: `12.3 s`, `10.1 s, failed`, `> 300 s`.
fn cell(b: &Build) -> String {
    match &b.outcome {
        Outcome::Passed => format!("{:.1} s", b.secs),
        Outcome::Failed(_) => format!("{:.1} s, failed", b.secs),
        Outcome::TimedOut(n) => format!("> {n} s"),
    }
}

fn servers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/servers")
}

/// Runs one of the test servers' helper scripts to its end.
fn servers_script(script: &str, args: &[&str]) -> Res<()> {
    let out = Command::new("python3")
        .arg(servers_dir().join(script))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("python3 {script}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "python3 {script} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// azurite's blob server: `MAYBE_SCCACHE_TEST_AZURITE`, else where `tests/setup.sh` or
/// `.ci/run` install it, else `PATH`.
fn find_azurite() -> Option<PathBuf> {
    if let Some(given) = std::env::var_os("MAYBE_SCCACHE_TEST_AZURITE").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(given)).filter(|p| p.is_file());
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    let installed = cache.into_iter().flat_map(|c| {
        ["maybe-sccache-tests", "maybe-sccache-ci"]
            .map(|d| c.join(d).join("npm/node_modules/.bin/azurite-blob"))
    });
    installed
        .chain(find_on_path("azurite-blob"))
        .find(|p| p.is_file())
}
