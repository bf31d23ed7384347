//! Bulk offline lookup (`switchboard lookup -`): one number per input line, one JSON object per
//! output line, in input order, on every core.
//!
//! A pipeline with no barrier: the calling thread reads numbered chunks of lines, each worker
//! thread answers whole chunks on its own, and a writer thread prints them back in order
//! (holding early ones until their turn). A chunk travels as one buffer each way, so memory is
//! allocated and freed on the same thread but for one buffer per chunk. At most [`CHUNKS_PER_WORKER`] chunks per worker are
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
/// order. `threads` = 0 uses one thread per core; 1 does everything on the calling thread.
/// Returns how many lines were answered.
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
    if workers == 1 {
        return on_this_thread(engine, region, input, output);
    }
    let in_flight = workers * CHUNKS_PER_WORKER;
    // (chunk number, its lines) to the workers; (chunk number, answers, how many) to the writer.
    let (to_workers, jobs) = mpsc::sync_channel::<(usize, String)>(in_flight);
    let jobs = Mutex::new(jobs);
    let (to_writer, answered) = mpsc::sync_channel::<(usize, Vec<u8>, usize)>(in_flight);
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
                crate::phone::own_patterns_on_this_thread();
                loop {
                    let job = jobs
                        .lock()
                        .map_err(|_| ())
                        .and_then(|j| j.recv().map_err(|_| ()));
                    let Ok((seq, lines)) = job else { return };
                    let mut answers = Vec::with_capacity(lines.len() * 16);
                    let count = lines
                        .lines()
                        .filter(|line| answer(engine, line.trim(), region, &mut answers))
                        .count();
                    if to_writer.send((seq, answers, count)).is_err() {
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
            for (seq, answers, count) in answered {
                early.insert(seq, (answers, count));
                while let Some((answers, count)) = early.remove(&next) {
                    out.write_all(&answers)?;
                    lines += count;
                    next += 1;
                    // The reader may be gone already; then nothing waits for the slot.
                    let _ = free_slot.send(());
                }
            }
            out.flush()?;
            Ok(lines)
        });
        let mut input = input;
        let mut read = Ok(());
        for seq in 0.. {
            let chunk = match read_chunk(&mut input) {
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

/// The single-threaded pipeline: read a chunk, answer it, write it, on the calling thread.
fn on_this_thread<R: BufRead, W: Write>(
    engine: &Engine,
    region: Option<&str>,
    mut input: R,
    output: W,
) -> anyhow::Result<usize> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, output);
    let mut answers = Vec::new();
    let mut lines = 0;
    loop {
        let chunk = read_chunk(&mut input)?;
        if chunk.is_empty() {
            break;
        }
        answers.clear();
        lines += chunk
            .lines()
            .filter(|line| answer(engine, line.trim(), region, &mut answers))
            .count();
        out.write_all(&answers)?;
    }
    out.flush()?;
    Ok(lines)
}

/// Up to [`CHUNK_LINES`] lines of `input`, newlines included, in one buffer; empty at the end.
fn read_chunk(input: &mut impl BufRead) -> std::io::Result<String> {
    let mut chunk = String::new();
    for _ in 0..CHUNK_LINES {
        if input.read_line(&mut chunk)? == 0 {
            break;
        }
    }
    Ok(chunk)
}

/// Appends one input line's JSON answer and a newline to `out`; false (nothing appended) for a
/// blank line.
fn answer(engine: &Engine, input: &str, region: Option<&str>, out: &mut Vec<u8>) -> bool {
    if input.is_empty() {
        return false;
    }
    let start = out.len();
    let written = match engine.lookup_offline(input, region) {
        Ok(report) => serde_json::to_writer(&mut *out, &report),
        Err(e) => serde_json::to_writer(&mut *out, &error_object(input, &e)),
    };
    if written.is_err() {
        // Cannot happen for these types; never leave half an object behind.
        out.truncate(start);
        return false;
    }
    out.push(b'\n');
    true
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
