#!/usr/bin/env python3
"""Groups a flat `perf report` of the sidecar into the stages of a request.

Usage (while `switchboard-load run` drives the sidecar):
    perf record -F 999 -g -p "$(pgrep -f 'switchboard serve --config' | head -1)" \
        -o /tmp/sidecar.perf -- sleep 10
    perf report -i /tmp/sidecar.perf --no-children --sort dso,symbol -g none 2>/dev/null \
        | python3 load/perf_categories.py

Each sample goes to the first category whose pattern matches its symbol (kernel samples by
their DSO), so the order below matters.
"""

import re
import sys

CATEGORIES = [
    ("kernel: loopback TCP, syscalls, scheduler", None),
    ("allocator and memcpy (glibc malloc/free/memmove)",
     r"malloc|free|memmove|memcpy|memset|realloc|unlink_chunk|consolidate|memcmp"),
    ("argon2id hashing", r"argon2|blake2|Blake2"),
    ("phone parsing (libphonenumber regexes, carrier table)",
     r"regex|rlibphonenumber|phone::|phonenumber"),
    ("Redis client (redis crate, RESP parser)", r"redis::|combine::"),
    ("provider HTTP client (reqwest, hyper client, url)",
     r"reqwest|hyper_util::client|hyper::client|url::|hyper::proto::h1"),
    ("gRPC server (tonic, h2, hyper server, prost, tower)", r"tonic|h2::|hyper|prost|http::|tower"),
    ("HMAC, SHA-256, RNG, hex", r"sha2|hmac|chacha|rand|getrandom|hex::"),
    ("JSON, formatting, strings", r"serde|fmt|format|from_utf8|indexmap|str::"),
    ("tokio runtime, timers, wakers", r"tokio|mio|parking_lot|futures"),
    ("bytes", r"bytes::"),
    ("engine, store, handlers (switchboard code)", r"switchboard"),
]

LINE = re.compile(r"\s*([\d.]+)%\s+(\S+)\s+\[([.k])\]\s+(.*)")


def main() -> None:
    totals: dict[str, float] = {}
    for line in sys.stdin:
        m = LINE.match(line)
        if not m:
            continue
        share, dso, kind, symbol = float(m.group(1)), m.group(2), m.group(3), m.group(4)
        name = "other"
        for cat, pattern in CATEGORIES:
            if pattern is None:
                if kind == "k" or dso.startswith("[kernel"):
                    name = cat
                    break
            elif re.search(pattern, symbol):
                name = cat
                break
        totals[name] = totals.get(name, 0.0) + share
    print("| share of sidecar CPU samples | stage |")
    print("|--:|---|")
    for name, share in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"| {share:.1f}% | {name} |")


if __name__ == "__main__":
    main()
