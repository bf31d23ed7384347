"""Schemathesis hooks for scripts/api-property-test: one more check, `error_table`, on top of
Schemathesis' own. Every error answer must be the documented envelope
`{"error": {"code", "message", "retry_after"?}}` with a code from the README's error table,
answered with the HTTP status that table gives it (read from README.md, so the two cannot drift)."""

import pathlib
import re

import schemathesis

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def _error_table():
    table = {}
    rows = README.read_text(encoding="utf-8").split("| code | HTTP | gRPC |", 1)[1].splitlines()
    for row in rows[2:]:
        if not row.startswith("|"):
            break
        cells = [c.strip() for c in row.strip("|").split("|")]
        status = int(re.match(r"\d{3}", cells[1]).group(0))
        for code in re.findall(r"`([A-Za-z_]+)`", cells[0]):
            table[code] = status
    return table


ERRORS = _error_table()


def _is_json(response):
    kind = response.headers.get("content-type") or response.headers.get("Content-Type") or ""
    if isinstance(kind, list):
        kind = kind[0] if kind else ""
    return kind.startswith("application/json")


@schemathesis.check
def error_table(ctx, response, case):
    # The hosted page answers HTML (its own words for a refusal); the API's envelope is JSON.
    if response.status_code < 400 or not _is_json(response):
        return None
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, f"not an error envelope: {body!r}"
    error = body["error"]
    assert isinstance(error, dict), f"not an error envelope: {body!r}"
    assert set(error) <= {"code", "message", "retry_after"}, f"unexpected keys in {error!r}"
    assert isinstance(error.get("message"), str) and error["message"], f"no message in {error!r}"
    code = error.get("code")
    assert code in ERRORS, f"{code!r} is not in the README's error table"
    assert ERRORS[code] == response.status_code, (
        f"{code} answered with {response.status_code}; the README's error table says {ERRORS[code]}"
    )
    return None


# Whether a string is a phone number, and whether a pinned channel reaches it, is decided by
# libphonenumber's metadata and the route table, not by anything JSON Schema can state; a request
# valid by the document may be refused for exactly these two reasons and no other.
NOT_IN_THE_SCHEMA = {(400, "INVALID_PHONE_NUMBER"), (422, "CHANNEL_UNAVAILABLE")}
ACCEPTED = {401, 403, 404, 409, 429}


@schemathesis.check
def valid_requests_accepted(ctx, response, case):
    """Schemathesis' positive_data_acceptance, except for the two refusals above."""
    meta = case.meta
    status = response.status_code
    if meta is None or not meta.generation.mode.is_positive or status < 400 or status >= 500:
        return None
    if status in ACCEPTED or not _is_json(response):
        return None
    code = (response.json().get("error") or {}).get("code")
    assert (status, code) in NOT_IN_THE_SCHEMA, (
        f"a request valid by the document was refused: {status} {response.text}"
    )
    return None
