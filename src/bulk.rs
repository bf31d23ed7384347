//! Bulk offline lookup (`switchboard lookup -`): one number per input line, one JSON object per
//! output line, in input order, on every core.
//!
//! A pipeline with no barrier: the calling thread reads numbered chunks of lines, each worker
//! thread answers whole chunks on its own, and a writer thread prints them back in order
//! (holding early ones until their turn). At most [`CHUNKS_PER_WORKER`] chunks per worker are
//! between reading and writing, so memory stays flat on any input size, and no core waits for
//! another between chunks. A line that is not a valid number gets an error object
//! (`{"input", "error": {"code", "message"}}`), never an abort; blank lines are skipped.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::{Mutex, mpsc};

use crate::Engine;

/// Lines per chunk: ~1-2 ms of work, so that handing a chunk over costs little and the last
/// chunks of the input spread over the workers.
const CHUNK_LINES: usize = 512;

/// Chunks per worker that may be read but not yet written.
const CHUNKS_PER_WORKER: usize = 4;

/// At most this many characters of a bad input are echoed in its error object.
const ECHO_CHARS: usize = 64;

/// Looks up every line of `input` and writes one JSON line per non-blank line to `output`, in
/// order. `threads` = 0 uses one thread per core. Returns how many lines were answered.
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
    let workers = match threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let in_flight = workers * CHUNKS_PER_WORKER;
    let (to_workers, jobs) = mpsc::sync_channel::<(usize, Vec<String>)>(in_flight);
    let jobs = Mutex::new(jobs);
    let (to_writer, answered) = mpsc::sync_channel::<(usize, Vec<Vec<u8>>)>(in_flight);
    // One token per chunk allowed in flight: the reader takes one per chunk, the writer gives
    // it back once the chunk is written.
    let (free_slot, slots) = mpsc::sync_channel::<()>(in_flight);
    for _ in 0..in_flight {
        free_slot.send(())?;
    }
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let to_writer = to_writer.clone();
            let jobs = &jobs;
            scope.spawn(move || {
                loop {
                    let job = jobs
                        .lock()
                        .map_err(|_| ())
                        .and_then(|j| j.recv().map_err(|_| ()));
                    let Ok((seq, lines)) = job else { return };
                    let answers = lines
                        .iter()
                        .filter_map(|line| answer(engine, line.trim(), region))
                        .collect();
                    if to_writer.send((seq, answers)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(to_writer);
        let writer = scope.spawn(move || -> std::io::Result<usize> {
            let mut out = std::io::BufWriter::with_capacity(1 << 16, output);
            let mut early = BTreeMap::new();
            let (mut next, mut lines) = (0, 0);
            for (seq, answers) in answered {
                early.insert(seq, answers);
                while let Some(answers) = early.remove(&next) {
                    for line in &answers {
                        out.write_all(line)?;
                    }
                    lines += answers.len();
                    next += 1;
                    // The reader may be gone already; then nothing waits for the slot.
                    let _ = free_slot.send(());
                }
            }
            out.flush()?;
            Ok(lines)
        });
        let mut input = input.lines();
        let mut read = Ok(());
        for seq in 0.. {
            let chunk = match input
                .by_ref()
                .take(CHUNK_LINES)
                .collect::<std::io::Result<Vec<String>>>()
            {
                Ok(chunk) if chunk.is_empty() => break,
                Ok(chunk) => chunk,
                Err(e) => {
                    read = Err(e);
                    break;
                }
            };
            // Both fail only when the writer stopped on an error, which its join returns.
            if slots.recv().is_err() || to_workers.send((seq, chunk)).is_err() {
                break;
            }
        }
        drop(to_workers);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the output writer panicked")));
        read?;
        Ok(written?)
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
