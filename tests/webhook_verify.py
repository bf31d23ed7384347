#!/usr/bin/env python3
"""Verifies a switchboard webhook signature independently of the Rust code.

Standard library only. The signed string is derived from the payload: object keys sorted
recursively, floats shortened (trailing zeros after the decimal point dropped, and the point
itself when nothing follows), compact JSON with non-ASCII characters as they are; the signature
is hex(HMAC-SHA256(secret, string)).

With a timestamp, the X-Signature-V3 is checked instead: hex(HMAC-SHA256(secret,
X-Timestamp + "." + raw body)) over the raw bytes, and the timestamp must be within 5 minutes of
this machine's clock (a replayed delivery is refused).

Usage: WEBHOOK_SECRET=... webhook_verify.py X_SIGNATURE_V2 < raw_body
       WEBHOOK_SECRET=... webhook_verify.py X_SIGNATURE_V3 X_TIMESTAMP < raw_body
Prints OK and exits 0 when the signature matches, prints FAIL and exits 1 otherwise.
"""

import hashlib
import hmac
import json
import os
import sys
import time
from decimal import Decimal

TOLERANCE_SECS = 300


def shorten_float(x: float) -> str:
    """The shortest decimal that reads back as `x`: plain for 1e-5 <= |x| < 1e16 with trailing
    zeros after the point dropped (and the point when nothing follows), otherwise
    `<mantissa>e<sign><exponent>` (`1e-7`, `1.5e+21`)."""
    text = repr(x)  # shortest round trip; scientific below 1e-4 and from 1e16
    if "e" in text:
        mantissa, exponent = text.split("e")
        if int(exponent) != -5:
            sign = "-" if exponent.startswith("-") else "+"
            return f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0') or '0'}"
        text = format(Decimal(text), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def canonical(value) -> str:
    if isinstance(value, dict):
        items = sorted(value.items())
        return "{" + ",".join(
            json.dumps(k, ensure_ascii=False) + ":" + canonical(v) for k, v in items
        ) + "}"
    if isinstance(value, list):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    if isinstance(value, float):
        return shorten_float(value)
    return json.dumps(value, ensure_ascii=False)


def main() -> int:
    secret = os.environ["WEBHOOK_SECRET"].encode()
    signature = sys.argv[1].strip().lower()
    raw = sys.stdin.buffer.read()
    if len(sys.argv) > 2:
        timestamp = sys.argv[2].strip()
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE_SECS:
            print("FAIL: stale or missing timestamp")
            return 1
        signed = timestamp.encode() + b"." + raw
        expected = hmac.new(secret, signed, hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, signature):
            print("OK")
            return 0
        print("FAIL")
        return 1
    try:
        payload = json.loads(raw.decode("utf-8"))
    except ValueError:
        print("FAIL: not JSON")
        return 1
    expected = hmac.new(secret, canonical(payload).encode("utf-8"), hashlib.sha256).hexdigest()
    if hmac.compare_digest(expected, signature):
        print("OK")
        return 0
    print("FAIL")
    return 1


if __name__ == "__main__":
    sys.exit(main())
