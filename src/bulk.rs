//! Bulk offline lookup (`switchboard lookup -`): one number per input line, one JSON object per
//! output line, in input order, on every core.
//!
//! Lines are read in chunks; each chunk is looked up in parallel on a rayon pool while a writer
//! thread prints the previous chunk, so neither reading nor writing holds the cores back. A line
//! that is not a valid number gets an error object (`{"input", "error": {"code", "message"}}`),
//! never an abort; blank lines are skipped.

use std::io::{BufRead, Write};
use std::sync::mpsc;

use rayon::prelude::*;

use crate::Engine;

/// Lines per parallel round: large enough that the join at the end of a round costs little,
/// small enough that memory stays flat on any input size.
const CHUNK_LINES: usize = 4096;

/// At most this many characters of a bad input are echoed in its error object.
const ECHO_CHARS: usize = 64;

/// Looks up every line of `input` and writes one JSON line per non-blank line to `output`, in
/// order. `threads` = 0 uses every core. Returns how many lines were answered.
pub fn lookup_lines<R, W>(
    engine: &Engine,
    region: Option<&str>,
    threads: usize,
    input: R,
    output: W,
) -> anyhow::Result<usize>
where
    R: BufRead,
    W: Write + Send,
{
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("lookup-{i}"))
        .build()?;
    std::thread::scope(|scope| {
        // Two answered chunks may wait for the writer; beyond that the readers wait.
        let (to_writer, from_workers) = mpsc::sync_channel::<Vec<Vec<u8>>>(2);
        let writer = scope.spawn(move || -> std::io::Result<()> {
            let mut out = std::io::BufWriter::with_capacity(1 << 16, output);
            for chunk in from_workers {
                for line in chunk {
                    out.write_all(&line)?;
                }
            }
            out.flush()
        });
        let mut lines = input.lines();
        let mut answered = 0;
        let read = loop {
            let chunk = match lines
                .by_ref()
                .take(CHUNK_LINES)
                .collect::<std::io::Result<Vec<String>>>()
            {
                Ok(chunk) if chunk.is_empty() => break Ok(()),
                Ok(chunk) => chunk,
                Err(e) => break Err(e),
            };
            let answers: Vec<Vec<u8>> = pool.install(|| {
                chunk
                    .par_iter()
                    .filter_map(|line| answer(engine, line.trim(), region))
                    .collect()
            });
            answered += answers.len();
            if to_writer.send(answers).is_err() {
                // The writer stopped on an error, which its join below returns.
                break Ok(());
            }
        };
        drop(to_writer);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the output writer panicked")));
        read.and(written)?;
        Ok(answered)
    })
}

/// One input line's JSON answer with its newline; `None` for a blank line.
fn answer(engine: &Engine, input: &str, region: Option<&str>) -> Option<Vec<u8>> {
    if input.is_empty() {
        return None;
    }
    let mut line = match engine.lookup_offline(input, region) {
        Ok(report) => serde_json::to_vec(&report).ok()?,
        Err(e) => serde_json::to_vec(&error_object(input, &e)).ok()?,
    };
    line.push(b'\n');
    Some(line)
}

/// The answer for an input that is not a valid number.
pub fn error_object(input: &str, e: &crate::Error) -> serde_json::Value {
    serde_json::json!({
        "input": shorten(input),
        "error": { "code": e.code(), "message": e.to_string() },
    })
}

/// At most [`ECHO_CHARS`] characters of untrusted input, with `…` when cut.
pub fn shorten(input: &str) -> String {
    let mut s: String = input.chars().take(ECHO_CHARS).collect();
    if input.chars().nth(ECHO_CHARS).is_some() {
        s.push('…');
    }
    s
}
