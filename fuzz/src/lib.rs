//! Fuzz targets: each takes arbitrary bytes, feeds them to one door through which untrusted
//! input reaches switchboard, and panics only when an invariant breaks (a crash for the
//! fuzzer). The same functions run under AFL++ (`afl/`, `scripts/fuzz`) and, over the committed
//! corpora, as ordinary tests (`tests/replay.rs`), so a crash once found stays fixed.
//!
//! Each target documents how it reads its input; the first bytes usually pick a variant (an
//! endpoint, a provider, a region), so one corpus covers them all.

mod canonical;
mod config;
mod grpc;
mod http;
mod phone;
pub mod receipts;

/// One fuzz target.
#[derive(Clone, Copy)]
pub struct Target {
    /// Its name: the corpus directory (`fuzz/corpus/<name>`) and the harness's argument.
    pub name: &'static str,
    /// Feeds one input through; panics when an invariant breaks.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "phone",
        run: phone::run,
    },
    Target {
        name: "http",
        run: http::run,
    },
    Target {
        name: "grpc",
        run: grpc::run,
    },
    Target {
        name: "receipts",
        run: receipts::run,
    },
    Target {
        name: "canonical",
        run: canonical::run,
    },
    Target {
        name: "config",
        run: config::run,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().copied().find(|t| t.name == name)
}

/// Splits `data` at the first `b'\n'`: (before, after); no newline: (`data`, empty).
fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}
