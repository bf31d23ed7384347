//! What a worldwide lookup sweep costs one process: resident memory after every region's
//! numbers went through `switchboard::phone::parse`, and the latency of the first lookup of each
//! region (the one that pays for that region's compiled patterns).
//!
//! The sweep looks up every distinct valid number of the oracle corpus
//! (`tests/data/phone_oracle.jsonl`: libphonenumber's example numbers of every number type of
//! every region and non-geographic calling code, and variations of them), in E.164 as
//! `POST /v3/phone/lookup/` receives them, region after region. Not a test: it asserts nothing about time, it measures.
//!
//! Run: `cargo run --release --example phone_memory` (patterns compiled lazily, on each region's
//! first number, as `switchboard lookup` does) or `... -- --warm-up` (compiled up front by
//! `switchboard::phone::warm_up()` first, as `switchboard serve` does at startup).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const CORPUS: &str = include_str!("../tests/data/phone_oracle.jsonl");

/// `(region, numbers)`: every distinct valid number of the oracle corpus in E.164, grouped by
/// region (non-geographic numbers under `"001"`), regions in alphabetical order. Read from the
/// corpus rather than asked of the library, which would compile patterns before the sweep.
fn world() -> Vec<(String, Vec<String>)> {
    let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in CORPUS.lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let (true, Some(e164)) = (entry["valid"] == true, entry["e164"].as_str()) {
            let region = entry["region"].as_str().unwrap_or("001").to_owned();
            groups.entry(region).or_default().insert(e164.to_owned());
        }
    }
    groups
        .into_iter()
        .map(|(region, numbers)| (region, numbers.into_iter().collect()))
        .collect()
}

/// `(VmRSS, VmHWM)` in MiB.
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn main() {
    let (rss_start, _) = memory();
    // The first parse decodes the metadata of every region (not per-region pattern work).
    let t = Instant::now();
    let first = switchboard::phone::parse("+34600600600", None).is_ok();
    let metadata = t.elapsed();
    let (rss_metadata, _) = memory();
    // The sweep's inputs are built before it starts, so their formatting is not counted.
    let groups = world();
    if std::env::args().any(|a| a == "--warm-up") {
        let t = Instant::now();
        let parsed = switchboard::phone::warm_up();
        let (rss, _) = memory();
        println!(
            "warm_up(): {parsed} example parses in {:.1} ms, resident memory then {rss:.1} MiB",
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    let (rss_before, _) = memory();

    let mut firsts = Vec::with_capacity(groups.len());
    let mut numbers = 0usize;
    let mut valid = 0usize;
    let sweep = Instant::now();
    for (_, group) in &groups {
        for (i, number) in group.iter().enumerate() {
            let t = Instant::now();
            let ok = switchboard::phone::parse(number, None).is_ok();
            if i == 0 {
                firsts.push(t.elapsed());
            }
            numbers += 1;
            valid += usize::from(ok);
        }
    }
    let sweep = sweep.elapsed();
    let (rss_after, hwm) = memory();

    // A second pass: every pattern is compiled now, this is the steady state.
    let t = Instant::now();
    for (_, group) in &groups {
        for number in group {
            std::hint::black_box(switchboard::phone::parse(number, None).is_ok());
        }
    }
    let warm = t.elapsed();

    let mut slowest: Vec<(Duration, &str)> = firsts
        .iter()
        .zip(&groups)
        .map(|(d, (label, _))| (*d, label.as_str()))
        .collect();
    slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
    firsts.sort();

    println!(
        "first parse (metadata decode): {:.2} ms (valid: {first})",
        metadata.as_secs_f64() * 1e3
    );
    println!(
        "sweep: {numbers} numbers ({valid} valid) of {} regions (non-geographic numbers as \"001\") in {:.1} ms",
        groups.len(),
        sweep.as_secs_f64() * 1e3
    );
    println!(
        "first lookup of a region: p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, max {:.1} us",
        percentile(&firsts, 0.5),
        percentile(&firsts, 0.9),
        percentile(&firsts, 0.99),
        percentile(&firsts, 1.0)
    );
    let top: Vec<String> = slowest
        .iter()
        .take(5)
        .map(|(d, l)| format!("{l} {:.0} us", d.as_secs_f64() * 1e6))
        .collect();
    println!("slowest first lookups: {}", top.join(", "));
    println!(
        "warm pass: {:.2} us per number",
        warm.as_secs_f64() * 1e6 / numbers as f64
    );
    println!(
        "resident memory: {rss_start:.1} MiB at start, {rss_metadata:.1} MiB after the metadata, \
         {rss_before:.1} MiB before the sweep, {rss_after:.1} MiB after it (peak {hwm:.1} MiB)"
    );
}
