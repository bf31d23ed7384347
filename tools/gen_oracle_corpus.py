#!/usr/bin/env python3
"""Generate the phone-parsing oracle corpus: tests/data/phone_oracle.jsonl.

The expected values come from the Python port of libphonenumber, pinned to the
metadata version of the rlibphonenumber crate switchboard parses with. The Rust test
`tests/phone_oracle.rs` runs `switchboard::phone::parse` on every input and compares
every field.

Per region (every supported region, plus the non-geographic calling codes):
  * libphonenumber's example number of every number type;
  * each example written several ways: E.164, international with spaces / dashes /
    dots / parentheses, national format with the default region, the international
    dialling prefix of another country ("00 34 ...", "011 34 ...") with that country
    as default region, national format *without* a region (must fail);
  * variations: trailing digits changed at random (mostly still valid), a digit
    dropped or added (invalid by length), the leading national digit changed
    (often an unassigned range);
plus garbage and edge cases.

One JSON object per line:
  input, default_region (null or code), valid (bool), and for valid entries
  e164, region (null for non-geographic), number_type (libphonenumber name),
  carrier (English, per carrier.name_for_number; null when empty) and
  country_name (English display name of `region`, see `expected`);
  `policy` marks the few entries where switchboard deliberately departs from the
  Python library (see POLICIES below), with the Python answer in `python_valid`.

Deterministic: a fixed seed, sorted iteration. Run twice, get the same bytes.

Usage:  pip install phonenumbers==9.0.42 && python3 tools/gen_oracle_corpus.py
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys

import phonenumbers as pn
from phonenumbers import PhoneNumberFormat as F
from phonenumbers import PhoneNumberType as T
from phonenumbers import carrier, geocoder

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_phone_data import (  # noqa: E402
    PINNED_VERSION,
    check_version,
    country_name_en,
    repair_mojibake,
)

SEED = 20250942
MAX_INPUT_CHARS = 250

# Where switchboard's `parse` deliberately differs from libphonenumber's parse +
# is_valid_number. The expected values below already include these decisions.
POLICIES = {
    # A code cannot be delivered to an extension; E.164 has no extension.
    "extension_rejected": "numbers with an extension are refused",
    # A default region that libphonenumber does not support is a caller error
    # (INVALID_REGION), even when the input has a '+' and would not need it.
    "invalid_region_rejected": "an unsupported default region is refused",
    # Region codes are accepted in any case ("es"); Python requires upper case.
    "region_case_insensitive": "the default region is upper-cased first",
}

TYPES = [
    T.FIXED_LINE,
    T.MOBILE,
    T.TOLL_FREE,
    T.PREMIUM_RATE,
    T.SHARED_COST,
    T.VOIP,
    T.PERSONAL_NUMBER,
    T.PAGER,
    T.UAN,
    T.VOICEMAIL,
]
NON_GEO_DESCS = [
    "fixed_line",
    "mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
]
# Regions that dial out with "00" and "011", used for IDD-style inputs.
IDD_FROM = ["DE", "ES", "FR", "IT", "US", "CA", "BR", "IN", "GB", "NL"]


def python_parse(text: str, region: str | None) -> tuple[pn.PhoneNumber | None, bool]:
    """libphonenumber's parse + is_valid_number."""
    try:
        num = pn.parse(text, region)
        return num, pn.is_valid_number(num)
    except pn.NumberParseException:
        return None, False


def expected(text: str, region: str | None) -> dict:
    """The oracle's answer for switchboard's parse(text, region)."""
    entry: dict = {"input": text, "default_region": region}
    effective = region
    if region and region not in pn.SUPPORTED_REGIONS and region.upper() in pn.SUPPORTED_REGIONS:
        effective = region.upper()
        entry.update(policy="region_case_insensitive", python_valid=python_parse(text, region)[1])
    num, valid = python_parse(text, effective)

    rejection = None
    if effective is not None and effective not in pn.SUPPORTED_REGIONS:
        rejection = "invalid_region_rejected"
    elif valid and num.extension:
        rejection = "extension_rejected"
    elif valid and len(pn.format_number(num, pn.PhoneNumberFormat.E164)) - 1 > 15:
        # libphonenumber accepts some national numbers (DE) that make more than E.164's 15
        # digits; no network delivers to them, and every answer promises E.164.
        rejection = "longer_than_e164"
    if rejection:
        entry.update(valid=False, policy=rejection, python_valid=valid)
        return entry

    entry["valid"] = valid
    if not valid:
        return entry
    region_code = pn.region_code_for_number(num)
    if region_code == pn.REGION_CODE_FOR_NON_GEO_ENTITY:
        region_code = None
    # switchboard reports the name of the region it reports. Python's
    # country_name_for_number agrees whenever the number is valid in one region
    # only; for a number valid in several regions sharing a calling code (+1 800
    # toll-free, +39 mobiles also valid in VA, ...) it returns "" instead. That
    # answer is kept in `python_country_name` for the record.
    country = country_name_en(region_code) if region_code else ""
    python_country = geocoder.country_name_for_number(num, "en")
    if python_country != country:
        entry["python_country_name"] = python_country
    carrier_name = repair_mojibake(carrier.name_for_number(num, "en"))
    entry.update(
        e164=pn.format_number(num, F.E164),
        region=region_code,
        number_type=pn.PhoneNumberType.to_string(pn.number_type(num)),
        carrier=carrier_name or None,
        country_name=country,
    )
    return entry


def international_variants(num: pn.PhoneNumber, rng: random.Random) -> list[str]:
    intl = pn.format_number(num, F.INTERNATIONAL)
    out = [intl]
    groups = intl.split(" ")
    style = rng.randrange(4)
    if style == 0:
        out.append("-".join(groups))
    elif style == 1:
        out.append(".".join(groups))
    elif style == 2 and len(groups) >= 3:
        out.append(f"{groups[0]} ({groups[1]}) {' '.join(groups[2:])}")
    else:
        out.append(pn.format_number(num, F.RFC3966))
    return out


def digit_variations(num: pn.PhoneNumber, rng: random.Random) -> list[str]:
    """E.164-ish strings derived from `num`; some valid, some not."""
    cc = str(num.country_code)
    nsn = pn.national_significant_number(num)
    out = []
    for _ in range(3):
        k = min(len(nsn) - 1, rng.randint(1, 4))
        tail = "".join(rng.choice("0123456789") for _ in range(k))
        out.append(f"+{cc}{nsn[:-k]}{tail}")
    out.append(f"+{cc}{nsn[:-1]}")  # one digit short
    out.append(f"+{cc}{nsn}{rng.choice('0123456789')}")  # one digit long
    first = rng.choice([d for d in "0123456789" if d != nsn[0]])
    out.append(f"+{cc}{first}{nsn[1:]}")  # other leading digit
    return out


def spaced(e164: str, rng: random.Random) -> str:
    """Insert random spaces/dashes so variations are not all unformatted."""
    if rng.random() < 0.5:
        return e164
    chars = list(e164)
    for i in range(len(chars) - 1, 2, -1):
        if rng.random() < 0.2:
            chars.insert(i, rng.choice(" -"))
    return "".join(chars)


def region_inputs(region: str, rng: random.Random) -> list[tuple[str, str | None]]:
    cases: list[tuple[str, str | None]] = []
    seen = set()
    for t in TYPES:
        num = pn.example_number_for_type(region, t)
        if num is None:
            continue
        key = (num.country_code, num.national_number)
        if key in seen:
            continue
        seen.add(key)
        e164 = pn.format_number(num, F.E164)
        cases.append((e164, None))
        cases += [(s, None) for s in international_variants(num, rng)]
        national = pn.format_number(num, F.NATIONAL)
        cases.append((national, region))
        if rng.random() < 0.15:
            cases.append((national, None))  # no region: must fail
        if rng.random() < 0.35:
            src = rng.choice([r for r in IDD_FROM if r != region])
            cases.append((pn.format_out_of_country_calling_number(num, src), src))
        cases += [(spaced(v, rng), None) for v in digit_variations(num, rng)]
    return cases


def non_geo_inputs(cc: int, rng: random.Random) -> list[tuple[str, str | None]]:
    meta = pn.PhoneMetadata.metadata_for_nongeo_region(cc)
    cases: list[tuple[str, str | None]] = []
    for field in NON_GEO_DESCS:
        desc = getattr(meta, field, None)
        if desc is None or not desc.example_number:
            continue
        num = pn.parse(f"+{cc}{desc.example_number}", None)
        cases.append((pn.format_number(num, F.E164), None))
        cases += [(s, None) for s in international_variants(num, rng)]
        cases += [(spaced(v, rng), None) for v in digit_variations(num, rng)]
    return cases


def carrier_inputs(rng: random.Random, sample: int) -> list[tuple[str, str | None]]:
    """Valid numbers inside carrier-data prefixes, to exercise the carrier table.

    Every prefix without an English name is included (the lookup must fall through
    to a shorter prefix), plus a random sample of the others.
    """
    from phonenumbers.carrierdata import CARRIER_DATA  # noqa: PLC0415

    prefixes = sorted(CARRIER_DATA)
    chosen = [p for p in prefixes if "en" not in CARRIER_DATA[p]]
    chosen += rng.sample([p for p in prefixes if "en" in CARRIER_DATA[p]], sample)
    out = []
    for prefix in chosen:
        for _ in range(20):
            total = rng.randint(len(prefix) + 1, 15)
            digits = prefix + "".join(rng.choice("0123456789") for _ in range(total - len(prefix)))
            if python_parse("+" + digits, None)[1]:
                out.append(("+" + digits, None))
                break
    return out


FIXED_CASES: list[tuple[str, str | None]] = [
    ("", None),
    ("   ", None),
    ("+", None),
    ("++34600600600", None),
    ("+34 6", None),
    ("hello", None),
    ("not a number", "US"),
    ("+1-800-FLOWERS", None),
    ("1-800-FLOWERS", "US"),
    ("+999 123 456 789", None),
    ("+0 123 456 789", None),
    ("600600600", None),
    ("600600600", "ES"),
    ("600600600", "es"),
    ("600600600", "XX"),
    ("+34600600600", "XX"),
    ("600600600", "001"),
    ("0034600600600", "ES"),
    ("0034600600600", None),
    ("+34600600600 ext. 12", None),
    ("+1 415 555 2671 x123", None),
    ("(415) 555-2671", "US"),
    ("tel:+34-600-600-600", None),
    ("tel:600600600;phone-context=+34", None),
    ("+３４６００６００６００", None),
    ("+٣٤٦٠٠٦٠٠٦٠٠", None),
    ("+34600600600" + " " * 240, None),
    ("+34600600600" + "\u00a0" * 230, None),
    ("9" * 300, None),
    ("+" + "1" * 40, None),
    ("+34 600 600 600 600 600", None),
    ("+44 7911 123456", None),
    ("+447911123456", "GB"),
    ("07911 123456", "GB"),
    ("+5511987654321", None),
    ("+14155552671", None),
    ("+80012345678", None),
    ("+882 1234 5678", None),
    ("+7 912 345 67 89", None),
    ("+7 700 123 45 67", None),
    ("+39 06 6982 1234", None),
    ("+39 312 345 6789", None),
    ("+225 07 0123 4567", None),
    ("+34 600-600-600", "FR"),
    ("+34 (600) 600 600", None),
    ("Call +34 600 600 600 now", None),
    ("+34 600 600 600 / +34 600 600 601", None),
]


def garbage(rng: random.Random, count: int) -> list[tuple[str, str | None]]:
    alphabet = "0123456789" * 4 + "+-() .#*xX/abc\u00a0\uff11\u0663"
    out = []
    for _ in range(count):
        n = rng.randint(0, 24)
        text = "".join(rng.choice(alphabet) for _ in range(n))
        out.append((text, rng.choice([None, None, "US", "ES", "GB", "DE"])))
    for _ in range(count):
        # Plausible-looking random international numbers.
        text = "+" + "".join(rng.choice("0123456789") for _ in range(rng.randint(4, 16)))
        out.append((text, None))
    return out


def build() -> list[dict]:
    rng = random.Random(SEED)
    inputs: list[tuple[str, str | None]] = list(FIXED_CASES)
    for region in sorted(pn.SUPPORTED_REGIONS):
        inputs += region_inputs(region, rng)
    for cc in sorted(pn.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        inputs += non_geo_inputs(cc, rng)
    inputs += carrier_inputs(rng, 1500)
    inputs += garbage(rng, 250)

    entries, seen = [], set()
    for text, region in inputs:
        if (text, region) in seen:
            continue
        seen.add((text, region))
        entries.append(expected(text, region))
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        default=os.path.normpath(
            os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "phone_oracle.jsonl")
        ),
    )
    parser.add_argument("--check", action="store_true", help="fail if the file is not up to date")
    args = parser.parse_args()
    check_version()

    entries = build()
    text = "".join(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n" for e in entries)
    try:
        with open(args.out, encoding="utf-8") as f:
            current = f.read()
    except FileNotFoundError:
        current = None
    valid = sum(e["valid"] for e in entries)
    regions = {e["region"] for e in entries if e.get("region")}
    summary = (
        f"{len(entries)} entries ({valid} valid, {len(entries) - valid} invalid), "
        f"{len(regions)} regions with valid numbers, phonenumbers {PINNED_VERSION}"
    )
    if current == text:
        print(f"up to date: {args.out}: {summary}")
        return
    if args.check:
        sys.exit(f"STALE: {args.out}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print(f"wrote {args.out}: {summary}")


if __name__ == "__main__":
    main()
