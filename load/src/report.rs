//! Results: one row per measured level, written as CSV (machines), markdown (people) and a plot
//! of p50/p99 latency and throughput against concurrency (SVG and PNG, `plotters`).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use plotters::prelude::*;

use crate::stats::{Op, Stats, Summary, Violation};

/// One measured level.
#[derive(Clone, Debug)]
pub struct Level {
    /// `sweep`, `mixed`, `provider-latency`, `empty-grpc`, `sidecar-health`.
    pub phase: String,
    pub hashing: String,
    pub concurrency: usize,
    pub wall: Duration,
    pub stats: Stats,
    /// CPU seconds of the server process under test (sidecar, or the empty reference server).
    pub server_cpu_s: Option<f64>,
    /// Peak RSS of the server process during the level (MiB).
    pub server_peak_rss_mib: Option<f64>,
    pub redis_cpu_s: Option<f64>,
    pub generator_cpu_s: f64,
    /// EVALSHA commands Redis served during the level.
    pub evalsha: Option<u64>,
    /// Plain SET calls: the sidecar's delivery records for the late fallback (the scripts
    /// use SET only with `vendor_data`, which the generator never sends).
    pub set: Option<u64>,
    /// All commands Redis processed during the level (script-internal ones included).
    pub redis_commands: Option<u64>,
    /// CPU seconds of everything else on the machine during the level (other users' builds):
    /// machine busy time minus server, Redis and generator.
    pub other_cpu_s: Option<f64>,
    /// CPU seconds the hypervisor stole during the level.
    pub steal_s: Option<f64>,
    /// Threads of the server process at the end of the level.
    pub server_threads: Option<u64>,
    /// Mean time inside the sidecar's handlers during the level, ms, by `api/method` (from its
    /// `request_duration_seconds` sum and count).
    pub handler_mean_ms: std::collections::BTreeMap<String, f64>,
}

impl Level {
    pub fn secs(&self) -> f64 {
        self.wall.as_secs_f64().max(1e-9)
    }

    pub fn pairs_per_s(&self) -> f64 {
        self.stats.pairs as f64 / self.secs()
    }

    pub fn rpc_per_s(&self) -> f64 {
        self.stats.calls as f64 / self.secs()
    }

    pub fn evalsha_per_pair(&self) -> Option<f64> {
        self.per_pair(self.evalsha)
    }

    pub fn set_per_pair(&self) -> Option<f64> {
        self.per_pair(self.set)
    }

    fn per_pair(&self, n: Option<u64>) -> Option<f64> {
        let n = n?;
        (self.stats.pairs > 0).then(|| n as f64 / self.stats.pairs as f64)
    }

    pub fn server_cores(&self) -> Option<f64> {
        self.server_cpu_s.map(|c| c / self.secs())
    }

    pub fn server_cpu_ms_per_pair(&self) -> Option<f64> {
        let c = self.server_cpu_s?;
        (self.stats.pairs > 0).then(|| c * 1000.0 / self.stats.pairs as f64)
    }
}

/// Everything else the report states.
#[derive(Clone, Debug, Default)]
pub struct RunInfo {
    pub lines: Vec<(String, String)>,
}

impl RunInfo {
    pub fn add(&mut self, k: impl Into<String>, v: impl Into<String>) {
        self.lines.push((k.into(), v.into()));
    }
}

fn f(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(String::new, |v| format!("{v:.digits$}"))
}

const CSV_HEADER: &str = "phase,hashing,concurrency,duration_s,sessions,pairs,calls,pairs_per_s,rpc_per_s,\
send_p50_ms,send_p95_ms,send_p99_ms,send_max_ms,check_p50_ms,check_p95_ms,check_p99_ms,check_max_ms,\
pair_p50_ms,pair_p95_ms,pair_p99_ms,pair_max_ms,lookup_p50_ms,lookup_p99_ms,call_p50_ms,call_p99_ms,call_max_ms,\
provider_p50_ms,provider_p99_ms,engine_added_p50_ms,engine_added_p95_ms,engine_added_p99_ms,engine_added_max_ms,\
errors,expected_refusals,violations,fallbacks,server_cpu_s,server_cores,server_cpu_ms_per_pair,server_peak_rss_mib,server_threads,\
redis_cpu_s,generator_cpu_s,other_cpu_s,steal_s,evalsha_per_pair,redis_commands_per_pair,set_per_pair";

pub fn write_csv(path: &Path, levels: &[Level]) -> anyhow::Result<()> {
    let mut s = String::from(CSV_HEADER);
    s.push('\n');
    for l in levels {
        let st = &l.stats;
        let sm = |op| st.summary(op);
        let (send, check, pair, lookup, call, prov, added) = (
            sm(Op::Send),
            sm(Op::Check),
            sm(Op::Pair),
            sm(Op::Lookup),
            sm(Op::Call),
            sm(Op::Provider),
            sm(Op::EngineAdded),
        );
        let four = |x: Summary| format!("{:.3},{:.3},{:.3},{:.3}", x.p50, x.p95, x.p99, x.max);
        let fields = [
            l.phase.clone(),
            l.hashing.clone(),
            l.concurrency.to_string(),
            format!("{:.3}", l.secs()),
            st.sessions.to_string(),
            st.pairs.to_string(),
            st.calls.to_string(),
            format!("{:.1}", l.pairs_per_s()),
            format!("{:.1}", l.rpc_per_s()),
            four(send),
            four(check),
            four(pair),
            format!("{:.3},{:.3}", lookup.p50, lookup.p99),
            format!("{:.3},{:.3},{:.3}", call.p50, call.p99, call.max),
            format!("{:.3},{:.3}", prov.p50, prov.p99),
            four(added),
            st.total_errors().to_string(),
            st.total_expected().to_string(),
            st.total_violations().to_string(),
            st.counter("fallback").to_string(),
            f(l.server_cpu_s, 3),
            f(l.server_cores(), 3),
            f(l.server_cpu_ms_per_pair(), 4),
            f(l.server_peak_rss_mib, 1),
            l.server_threads.map_or_else(String::new, |t| t.to_string()),
            f(l.redis_cpu_s, 3),
            format!("{:.3}", l.generator_cpu_s),
            f(l.other_cpu_s, 3),
            f(l.steal_s, 3),
            f(l.evalsha_per_pair(), 3),
            f(
                l.redis_commands
                    .filter(|_| st.pairs > 0)
                    .map(|c| c as f64 / st.pairs as f64),
                2,
            ),
            f(l.set_per_pair(), 3),
        ];
        s.push_str(&fields.join(","));
        s.push('\n');
    }
    std::fs::write(path, s).with_context(|| format!("write {}", path.display()))
}

/// Every error, expected refusal, violation and counter of every level, one per line.
pub fn write_counts_csv(path: &Path, levels: &[Level]) -> anyhow::Result<()> {
    let mut s = String::from("phase,hashing,concurrency,kind,name,count\n");
    for l in levels {
        let row = |s: &mut String, kind: &str, name: &str, n: u64| {
            let _ = writeln!(
                s,
                "{},{},{},{kind},{name},{n}",
                l.phase, l.hashing, l.concurrency
            );
        };
        for (k, v) in &l.stats.errors {
            row(&mut s, "error", k, *v);
        }
        for (k, v) in &l.stats.expected {
            row(&mut s, "expected", k, *v);
        }
        for v in [
            Violation::RightCodeNotApproved,
            Violation::DoubleApproval,
            Violation::WrongCodeApproved,
            Violation::AttemptLimitExceeded,
            Violation::ResendLimitExceeded,
            Violation::ApprovedAfterExpiry,
            Violation::SuccessWithoutDelivery,
            Violation::UnexpectedStatus,
        ] {
            row(
                &mut s,
                "violation",
                v.name(),
                l.stats.violations.get(&v).copied().unwrap_or(0),
            );
        }
        for (k, v) in &l.stats.counters {
            row(&mut s, "counter", k, *v);
        }
    }
    std::fs::write(path, s).with_context(|| format!("write {}", path.display()))
}

/// The empty reference's RPC/s at `concurrency`: the better of its runs.
pub fn empty_rpc_per_s(levels: &[Level], concurrency: usize) -> Option<f64> {
    levels
        .iter()
        .filter(|e| e.phase.starts_with("empty") && e.concurrency == concurrency)
        .map(Level::rpc_per_s)
        .reduce(f64::max)
}

fn ms(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn lat(s: Summary) -> String {
    if s.count == 0 {
        return "–".into();
    }
    format!(
        "{} / {} / {} / {}",
        ms(s.p50),
        ms(s.p95),
        ms(s.p99),
        ms(s.max)
    )
}

/// The markdown report.
pub fn markdown(levels: &[Level], info: &RunInfo) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# switchboard-load results\n");
    let _ = writeln!(s, "| | |\n|---|---|");
    for (k, v) in &info.lines {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    let _ = writeln!(
        s,
        "\n## send→check pairs over gRPC\n\nLatency columns are p50 / p95 / p99 / max in ms. \
         \"% empty\" compares the RPC/s with the empty gRPC service at the same concurrency. \
         Server CPU is the sidecar's own (cores = CPU seconds / wall seconds).\n"
    );
    let _ = writeln!(
        s,
        "| phase | hashing | in flight | pairs/s | RPC/s | % empty | send ms | check ms | engine-added p50 / p99 ms | errors | expected refusals | violations | sidecar cores | sidecar CPU ms/pair | sidecar peak RSS MiB | EVALSHA/pair | SET/pair | other load (cores) |"
    );
    let _ = writeln!(
        s,
        "|---|---|--:|--:|--:|--:|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    );
    for l in levels.iter().filter(|l| !l.phase.starts_with("empty")) {
        let added = l.stats.summary(Op::EngineAdded);
        let empty = empty_rpc_per_s(levels, l.concurrency);
        let pct = empty.filter(|e| *e > 0.0).map_or_else(String::new, |e| {
            format!("{:.0}%", 100.0 * l.rpc_per_s() / e)
        });
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            l.phase,
            l.hashing,
            l.concurrency,
            l.pairs_per_s(),
            l.rpc_per_s(),
            pct,
            lat(l.stats.summary(Op::Send)),
            lat(l.stats.summary(Op::Check)),
            if added.count == 0 {
                "–".into()
            } else {
                format!("{} / {}", ms(added.p50), ms(added.p99))
            },
            l.stats.total_errors(),
            l.stats.total_expected(),
            l.stats.total_violations(),
            f(l.server_cores(), 2),
            f(l.server_cpu_ms_per_pair(), 3),
            f(l.server_peak_rss_mib, 1),
            f(l.evalsha_per_pair(), 2),
            f(l.set_per_pair(), 2),
            f(l.other_cpu_s.map(|o| o / l.secs()), 2),
        );
    }
    let _ = writeln!(
        s,
        "\n## Where the time goes (means, ms)\n\n\
         *client* is what the generator saw; *handler* is the sidecar's own \
         `request_duration_seconds` for the same calls (from `/metrics`); *outside* = client − \
         handler: gRPC framing, loopback TCP and waiting for a CPU in both processes; \
         *provider* is the emulator's handler time of the same sends.\n\n\
         | phase | hashing | in flight | send client | send handler | of which provider | send outside | check client | check handler | check outside |\n\
         |---|---|--:|--:|--:|--:|--:|--:|--:|--:|"
    );
    for l in levels
        .iter()
        .filter(|l| !l.phase.starts_with("empty") && l.phase != "sidecar-health")
    {
        let send = l.stats.summary(Op::Send);
        let check = l.stats.summary(Op::Check);
        let prov = l.stats.summary(Op::Provider);
        let h = |m: &str| {
            l.handler_mean_ms
                .iter()
                .find(|(k, _)| k.ends_with(m))
                .map(|(_, v)| *v)
        };
        let (hs, hc) = (h("/send"), h("/check"));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.3} | {} | {:.3} | {} | {:.3} | {} | {} |",
            l.phase,
            l.hashing,
            l.concurrency,
            send.mean,
            f(hs, 3),
            prov.mean,
            f(hs.map(|h| send.mean - h), 3),
            check.mean,
            f(hc, 3),
            f(hc.map(|h| check.mean - h), 3),
        );
    }
    let empties: Vec<&Level> = levels
        .iter()
        .filter(|l| l.phase.starts_with("empty"))
        .collect();
    if !empties.is_empty() {
        let _ = writeln!(
            s,
            "\n## Reference: empty gRPC service (grpc.health.v1 Check, own process)\n\n\
             | run | in flight | RPC/s | p50 / p95 / p99 / max ms | server cores | errors |\n|---|--:|--:|---|--:|--:|"
        );
        for l in empties {
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {} | {} | {} |",
                if l.phase.ends_with("end") {
                    "after"
                } else {
                    "before"
                },
                l.concurrency,
                l.rpc_per_s(),
                lat(l.stats.summary(Op::Call)),
                f(l.server_cores(), 2),
                l.stats.total_errors(),
            );
        }
    }
    let _ = writeln!(s, "\n## Errors, expected refusals, violations\n");
    for l in levels.iter().filter(|l| !l.phase.starts_with("empty")) {
        let mut parts = Vec::new();
        for (k, v) in &l.stats.errors {
            parts.push(format!("error `{k}` {v}"));
        }
        for (k, v) in &l.stats.expected {
            parts.push(format!("expected `{k}` {v}"));
        }
        for (k, v) in &l.stats.violations {
            parts.push(format!("**violation `{}` {v}**", k.name()));
        }
        for (k, v) in &l.stats.counters {
            parts.push(format!("{k} {v}"));
        }
        let _ = writeln!(
            s,
            "- {} {} ×{}: {}",
            l.phase,
            l.hashing,
            l.concurrency,
            if parts.is_empty() {
                "none".to_owned()
            } else {
                parts.join(", ")
            }
        );
    }
    s
}

/// Registers a font for the plot's text: the first of a few common TrueType paths, or `font`.
fn register_font(font: Option<&Path>) -> anyhow::Result<()> {
    let candidates = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    ];
    let path = font
        .map(Path::to_path_buf)
        .or_else(|| {
            candidates
                .iter()
                .map(std::path::PathBuf::from)
                .find(|p| p.is_file())
        })
        .context("no TrueType font found for the plot (apt-get install fonts-dejavu-core, or pass --font)")?;
    let bytes: &'static [u8] = Box::leak(std::fs::read(&path)?.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("{} is not a usable font", path.display()))?;
    Ok(())
}

const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    levels: &[Level],
    title: &str,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let root = root
        .titled(title, ("sans-serif", 20))
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
    let sweep: Vec<&Level> = levels
        .iter()
        .filter(|l| l.phase.ends_with("sweep"))
        .collect();
    let mut schemes: Vec<String> = sweep.iter().map(|l| l.hashing.clone()).collect();
    schemes.dedup();
    let max_c = sweep
        .iter()
        .map(|l| l.concurrency)
        .max()
        .unwrap_or(128)
        .max(2) as f64;
    let x_range = (0.8f64..max_c * 1.25).log_scale();
    let err = |e: &dyn std::fmt::Debug| anyhow::anyhow!("{e:?}");

    // Latency: p50 and p99 of send and check.
    let max_ms = sweep
        .iter()
        .flat_map(|l| {
            [
                l.stats.summary(Op::Send).p99,
                l.stats.summary(Op::Check).p99,
            ]
        })
        .fold(1.0f64, f64::max);
    let mut chart = ChartBuilder::on(&left)
        .caption("latency (ms) vs pairs in flight", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(x_range.clone(), (0.05f64..max_ms * 1.5).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("pairs in flight (concurrency)")
        .y_desc("ms")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y}"))
        .draw()
        .map_err(|e| err(&e))?;
    let target = RGBColor(0, 0, 0).mix(0.6);
    chart
        .draw_series(DashedLineSeries::new(
            vec![(0.8, 10.0), (max_c * 1.25, 10.0)],
            2,
            4,
            target.stroke_width(1),
        ))
        .map_err(|e| err(&e))?
        .label("target: p99 ≤ 10 ms at 64 in flight")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], target.stroke_width(1)));
    for (si, scheme) in schemes.iter().enumerate() {
        let color = COLORS[si % COLORS.len()];
        for (op, q, dashed) in [
            (Op::Send, 0.50, false),
            (Op::Send, 0.99, true),
            (Op::Check, 0.50, false),
            (Op::Check, 0.99, true),
        ] {
            let pts: Vec<(f64, f64)> = sweep
                .iter()
                .filter(|l| &l.hashing == scheme)
                .map(|l| {
                    let s = l.stats.summary(op);
                    (
                        l.concurrency as f64,
                        (if q > 0.9 { s.p99 } else { s.p50 }).max(0.05),
                    )
                })
                .collect();
            let style = if op == Op::Check {
                color.mix(0.55).stroke_width(2)
            } else {
                color.stroke_width(2)
            };
            let label = format!("{scheme} {} p{}", op.name(), if q > 0.9 { 99 } else { 50 });
            if dashed {
                chart
                    .draw_series(DashedLineSeries::new(pts.clone(), 6, 4, style))
                    .map_err(|e| err(&e))?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(1))
                    });
            } else {
                chart
                    .draw_series(LineSeries::new(pts.clone(), style))
                    .map_err(|e| err(&e))?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
                    });
            }
            chart
                .draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))
                .map_err(|e| err(&e))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 11))
        .draw()
        .map_err(|e| err(&e))?;

    // Throughput: pairs/s per scheme, and the empty service's RPC/s / 2 (a pair is 2 RPCs).
    let empty: Vec<(f64, f64)> = levels
        .iter()
        .filter(|l| l.phase == "empty-grpc")
        .filter_map(|l| {
            empty_rpc_per_s(levels, l.concurrency).map(|r| (l.concurrency as f64, r / 2.0))
        })
        .collect();
    let max_tp = sweep
        .iter()
        .map(|l| l.pairs_per_s())
        .chain(empty.iter().map(|p| p.1))
        .fold(10.0f64, f64::max);
    let mut chart = ChartBuilder::on(&right)
        .caption("throughput vs pairs in flight", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range, 0f64..max_tp * 1.15)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("pairs in flight (concurrency)")
        .y_desc("send+check pairs / s")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| err(&e))?;
    let target = RGBColor(0, 0, 0).mix(0.6);
    chart
        .draw_series(DashedLineSeries::new(
            vec![(0.8, 5000.0), (max_c * 1.25, 5000.0)],
            2,
            4,
            target.stroke_width(1),
        ))
        .map_err(|e| err(&e))?
        .label("target: 5,000 pairs/s at 64 in flight")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], target.stroke_width(1)));
    for (si, scheme) in schemes.iter().enumerate() {
        let color = COLORS[si % COLORS.len()];
        let pts: Vec<(f64, f64)> = sweep
            .iter()
            .filter(|l| &l.hashing == scheme)
            .map(|l| (l.concurrency as f64, l.pairs_per_s()))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(format!("sidecar, {scheme}: pairs/s"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
            });
        chart
            .draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))
            .map_err(|e| err(&e))?;
    }
    if !empty.is_empty() {
        let grey = RGBColor(120, 120, 120);
        chart
            .draw_series(DashedLineSeries::new(
                empty.clone(),
                6,
                4,
                grey.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label("empty gRPC service: RPC/s ÷ 2")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], grey.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 11))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Writes `stem.svg` and `stem.png`.
pub fn plot(stem: &Path, levels: &[Level], title: &str, font: Option<&Path>) -> anyhow::Result<()> {
    register_font(font)?;
    let svg = stem.with_extension("svg");
    draw(
        SVGBackend::new(&svg, (1280, 540)).into_drawing_area(),
        levels,
        title,
    )?;
    let png = stem.with_extension("png");
    draw(
        BitMapBackend::new(&png, (1280, 540)).into_drawing_area(),
        levels,
        title,
    )?;
    Ok(())
}
