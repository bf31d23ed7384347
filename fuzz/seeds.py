#!/usr/bin/env python3
"""Writes the hand-made seed inputs of each fuzz target into fuzz/corpus/<target>/seed-*.

Seeds follow each target's input layout (see the module docs in fuzz/src/); they are shapes the
tests use. AFL++ grows the corpus from them; `scripts/fuzz --save` minimises what it found back
into fuzz/corpus/. Run again after changing a layout: it rewrites only the seed-* files.
"""
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent
CORPUS = ROOT / "corpus"


def write(target, seeds):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("seed-*"):
        old.unlink()
    for i, data in enumerate(seeds):
        if isinstance(data, str):
            data = data.encode()
        (d / f"seed-{i:03}").write_bytes(data)


def phone():
    numbers = ["+34600600600", "+12025550101", "+447700900123", "+8613800138000",
               "+5511987654321", "+919876543210", "+2348031234567", "+79161234567",
               "+390612345678", "+80012345678", "+882355000000", "+1 (415) 555-2671 ext. 7",
               "0034600600600", "+00", "+", "", " ", "+٣٤٦٠٠٦٠٠٦٠٠", "tel:+34-600-600-600"]
    seeds = [b"\x00" + n.encode() for n in numbers]
    national = ["600 600 600", "(415) 555-2671", "07700 900123", "06 12 34 56 78", "011 54 9 11 1234 5678"]
    seeds += [bytes([32 + i * 7]) + n.encode() for i, n in enumerate(national)]
    seeds += [b"\xffUS\n(415) 555-2671", b"\xffes\n600600600", b"\xffZZ\n600600600", b"\xff\n1"]
    return seeds


def http():
    def seed(which, flags, body, param=None):
        body = body if isinstance(body, (bytes, str)) else json.dumps(body)
        body = body.encode() if isinstance(body, str) else body
        prefix = bytes([which, flags])
        return prefix + ((param.encode() + b"\n") if param is not None else b"") + body

    send = {"phone_number": "+34600600600", "channel": "SMS", "vendor_data": "user-1",
            "metadata": {"k": "v"}, "options": {"code_size": 6, "locale": "es",
                                                 "preferred_channel": "WHATSAPP"},
            "signals": {"ip": "203.0.113.7", "device_id": "d1", "user_agent": "ua"}}
    return [
        seed(0, 1, send),
        seed(0, 3, {"phone_number": "+12025550101"}),
        seed(0, 1, {"phone_number": "600600600", "region": "ES"}),
        seed(0, 1, "{\"phone_number\": "),
        seed(0, 0, "[1]"),
        seed(1, 1, {"phone_number": "+34600600600", "code": "123456", "vendor_data": "user-1"}),
        seed(1, 1, {"phone_number": "+34600600600", "code": "000000",
                    "duplicated_phone_number_action": "DECLINE", "enable_enrichment": True}),
        seed(2, 1, {"phone_number": "+447700900123", "region": "GB", "vendor_data": "u"}),
        seed(3, 1, {"phone_numbers": ["+34600600600", "+12025550101", "bad"], "region": "US"}),
        seed(4, 0, b"", "0b7d3c1e-8a4f-4c2d-9e6b-5f1a2b3c4d5e"),
        seed(5, 1, {"status": "Approved", "reason": "checked"}, "0b7d3c1e-8a4f-4c2d-9e6b-5f1a2b3c4d5e"),
        seed(6, 0, b"", "+34600600600"),
        seed(7, 1, {"phone_number": "+34600600601"}),
        seed(8, 0, b"", "+34600600601"),
        seed(9, 0, b""),
        seed(10, 0, b"", "prefix:+3460060"),
        seed(11, 1, {"entry": "+34600600600"}),
        seed(12, 1, {"entry": "+34600600600"}),
        seed(13, 1, {"geo": {"sms": {"UZ": "deny", "ES": "monitor"}, "all": {"KP": "deny"}}}),
        seed(14, 0, b""),
        seed(15, 0, "MessageSid=SM1&MessageStatus=delivered", "twilio"),
        seed(16, 1, {"name": "shop", "settings": {"brand": "Acme", "brand_color": "#0a7d32",
                                                  "locale": "es", "max_attempts": 3,
                                                  "allowed_channels": ["SMS", "WHATSAPP"]}}),
        seed(17, 0, b"", "default"),
        seed(18, 1, {"settings": {"code_validity_secs": 120}}, "default"),
        seed(19, 0, b"", "wf_1"),
        seed(20, 1, {"vendor_data": "u1", "callback": "https://example.com/done",
                     "metadata": {"k": 1}, "contact_details": {"phone": "+34600600600"},
                     "language": "ar"}),
        seed(21, 0, b"", "0b7d3c1e-8a4f-4c2d-9e6b-5f1a2b3c4d5e"),
        seed(22, 1, {"url": "https://example.com/hook", "subscribed_events": ["session.approved"]}),
        seed(23, 0, b"", "dest_1"),
        seed(24, 0, b"", ""),
        seed(25, 1, "csrf=CSRF&phone_number=600600600&country=ES&channel=SMS", ""),
        seed(26, 1, "csrf=CSRF", ""),
        seed(27, 1, "csrf=CSRF&code=123456", ""),
        seed(27, 1, "csrf=wrong&code=123456", ""),
        seed(28, 0, b"", ""),
    ]


def grpc():
    def varint(n):
        out = b""
        while True:
            b = n & 0x7F
            n >>= 7
            if n:
                out += bytes([b | 0x80])
            else:
                return out + bytes([b])

    def s(field, value):
        value = value.encode() if isinstance(value, str) else value
        return varint(field << 3 | 2) + varint(len(value)) + value

    def v(field, value):
        return varint(field << 3) + varint(value)

    send = (s(1, "+34600600600") + v(3, 1) + s(4, "user-1")
            + s(5, v(1, 6) + s(2, "es")) + s(6, s(1, "203.0.113.7") + s(2, "device-1"))
            + s(7, '{"order": 7}'))
    vid = "0b7d3c1e-8a4f-4c2d-9e6b-5f1a2b3c4d5e"
    seeds = [
        (0, send),
        (0, s(1, "600600600") + s(2, "ES")),
        (1, s(1, "+34600600600") + s(3, "123456") + s(4, "user-1")),
        (2, s(1, "+12025550101") + s(2, "US")),
        (3, s(1, "+34600600600") + s(1, "+12025550101") + s(1, "nope")),
        (4, s(1, "+34600600600") + s(4, vid)),
        (5, s(1, vid) + s(2, "Approved") + s(3, "checked")),
        (6, s(1, "+34600600600")),
        (7, s(1, "+34600600601")),
        (8, s(1, "+34600600601")),
        (9, s(1, "prefix:+3460060")),
        (10, s(1, "+34600600600")),
        (11, s(1, "+34600600600")),
        (13, b""),
        (14, b""),
    ]
    return [bytes([which]) + body for which, body in seeds]


def receipts():
    twilio = "AccountSid=AC0123456789abcdef0123456789abcdef&MessageSid=SM1&MessageStatus=undelivered&ErrorCode=30003&To=%2B34600600600"
    meta = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": "106540352242922"},
        "statuses": [{"id": "wamid.X", "status": "failed", "timestamp": "1767225500",
                      "recipient_id": "34600600600", "errors": [{"code": 131026, "title": "Message undeliverable"}]}]}}]}]}
    telegram = {"request_id": "1b3f0e2c9a7d4e5f", "phone_number": "+34600600600", "request_cost": 0.01,
                "delivery_status": {"status": "delivered", "updated_at": 1767225500},
                "verification_status": {"status": "code_valid", "updated_at": 1767225500}}
    vonage = {"message_uuid": "d8f86df1-dec6-442f-870a-2241be27d721", "to": "34600600600", "from": "16273",
              "timestamp": "2026-01-01T00:00:00.000Z", "status": "rejected", "channel": "viber_service",
              "error": {"type": "https://developer.vonage.com/api-errors/messages#1000", "title": "1000"}}
    infobip = {"results": [{"messageId": "m1", "to": "34600600600", "sentAt": "2026-01-01T00:00:00.000+0000",
                            "doneAt": "2026-01-01T00:00:01.000+0000",
                            "status": {"groupId": 3, "groupName": "DELIVERED", "id": 5, "name": "DELIVERED_TO_HANDSET"},
                            "error": {"groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR", "permanent": False}}]}
    bodies = [twilio, json.dumps(meta), json.dumps(telegram), json.dumps(vonage), json.dumps(infobip)]
    seeds = [bytes([i, 0]) + b.encode() for i, b in enumerate(bodies)]
    seeds += [bytes([i, 1]) + b"not-the-signature\n" + b.encode() for i, b in enumerate(bodies)]
    seeds += [bytes([3, 1]) + b"Bearer a.b.c\n" + bodies[3].encode(),
              bytes([4, 1]) + b"Basic c3dpdGNoYm9hcmQ6eA==\n" + bodies[4].encode(),
              bytes([5, 0]) + b"hub.mode=subscribe&hub.verify_token=fuzz-meta-verify-token&hub.challenge=1158201444",
              bytes([5, 0]) + b"hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1"]
    return seeds


def canonical():
    return [
        json.dumps({"event": "verification.approved", "verification_id": "0b7d3c1e-8a4f-4c2d-9e6b-5f1a2b3c4d5e",
                    "phone": {"full_number": "+34600600600", "warnings": []}, "cost": {"amount": 0.0450, "currency": "EUR"},
                    "z": 1.50, "a": [1, 2.0, -0.0, 1e300, 12345678901234567890]}),
        '{"b":1,"a":{"d":[true,false,null],"c":"\\u00e9\\n"}}',
        "[1.10, 100.0, 0.000001, 1.5e-7, -3]",
        '"text"',
        "-0",
    ]


def config():
    root = ROOT.parent
    seeds = [(root / "config" / "default.toml").read_text(), (root / "config" / "routes.toml").read_text()]
    seeds += [
        '[workflow]\ncode_validity_secs = 300\nmax_attempts = 2\n',
        '[apps.shop]\nmax_attempts = 3\n[apps."bad name"]\n',
        'mode = "production"\n[server]\napi_keys = []\n',
        'pepper = "short"\n',
        '[routing]\nstrategy = "adaptive"\n[workflow.routing]\nexplore_share = 2.0\n',
        'currency = "EUR"\n[countries.ES]\nroutes = [{ channel = "sms", provider = "twilio", price = 0.07 }]\n',
    ]
    return seeds


write("phone", phone())
write("http", http())
write("grpc", grpc())
write("receipts", receipts())
write("canonical", canonical())
write("config", config())
