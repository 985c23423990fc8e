//! Section 4's report: what the fallback path costs, from section 1's per-call figures and
//! section 2's builds without sccache. Section 4 has no runs of its own.

use std::fmt::Write as _;

use crate::graph::{Graph, Kind};
use crate::measure::{median, ratio, spread};
use crate::per_call::{Micro, Who};
use crate::sandbox::Bench;

impl Bench {
    pub(crate) fn render_fallback(
        &self,
        r: &mut String,
        micro: Option<&Micro>,
        graph: Option<&Graph>,
    ) {
        let _ = writeln!(r, "## 4. The fallback path's cost as the build grows\n");
        let Some(g) = graph else {
            let _ = writeln!(r, "Not measured (see Unexpected failures).\n");
            return;
        };
        let (Some(plain), Some(bare)) = (g.median(Kind::Plain), g.median(Kind::ShimBare)) else {
            let _ = writeln!(r, "Not measured.\n");
            return;
        };
        let _ = writeln!(
            r,
            "Section 2's project through the shim with no sccache anywhere, against plain \
             cargo; {} run(s) each, in adjacent pairs that open section 2's repetitions, \
             the order alternating. The machine's speed drifts over minutes, so the ratio \
             of adjacent runs is the better estimate.\n",
            g.count(Kind::ShimBare)
        );
        let _ = writeln!(
            r,
            "| build | runs | median | min–max | vs plain | others' CPU-s per build (median) |"
        );
        let _ = writeln!(r, "|---|---:|---:|---:|---:|---:|");
        for kind in [Kind::Plain, Kind::ShimBare] {
            let (lo, hi) = g.range(kind);
            let _ = writeln!(
                r,
                "| {} | {} | {:.2} s | {lo:.2}–{hi:.2} s | {} | {:.1} |",
                kind.name(),
                g.count(kind),
                g.median(kind).unwrap_or(f64::NAN),
                ratio(g.median(kind), Some(plain)),
                g.others_cpu(kind)
            );
        }
        let _ = writeln!(r);
        let paired = g.paired_ratios(Kind::ShimBare, Kind::Plain);
        let _ =
            writeln!(
                r,
                "- **Fallback overhead, adjacent pairs: {}** (shim without sccache / plain: \
             {}). Medians: {:+.2} s, {:+.2} %; best run of each: {}.",
                if paired.is_empty() {
                    "n/a".to_owned()
                } else {
                    format!(
                        "{:+.2} % of the plain build",
                        (median(&paired) - 1.0) * 100.0
                    )
                },
                spread(&paired),
                bare - plain,
                (bare - plain) / plain * 100.0,
                g.min(Kind::ShimBare).zip(g.min(Kind::Plain)).map_or(
                    "n/a".into(),
                    |(a, b)| format!("{:+.2} %", (a / b - 1.0) * 100.0)
                )
            );
        let calls = g.last(Kind::ShimBare).and_then(|b| b.calls.as_ref());
        let per_call = micro.and_then(|m| m.paired(Who::ShimBare, Who::Rustc, false));
        if let (Some(c), Some(pc)) = (calls, per_call) {
            let total = c.total();
            if pc > 0.0 {
                let _ = writeln!(
                    r,
                    "- For scale: the shim handled {total} calls ({}). At section 1's \
                     {pc:.2} ms per compile call (shim without sccache − rustc alone, \
                     median of per-round differences) that is {:.3} s of work in all, \
                     spread over the build's parallel jobs: {:.2} % of the plain build \
                     even if it were all on the critical path. A build-level difference \
                     within the min–max spread of the plain runs is noise.",
                    c.text(),
                    total as f64 * pc / 1e3,
                    total as f64 * pc / 1e3 / plain * 100.0
                );
            } else {
                let _ = writeln!(
                    r,
                    "- For scale: the shim handled {total} calls ({}); section 1 measured \
                     no per-call cost above rustc alone ({pc:+.2} ms, within noise).",
                    c.text()
                );
            }
        }
        let _ = writeln!(r);
    }
}
