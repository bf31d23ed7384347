"""Extracts the request-body schemas the spec conformance test validates against from the
pristine provider specs in /work/shared/specs (see README.md). Run from this directory:

    python3 extract.py /work/shared/specs

Each output file is one JSON Schema document: the request schema under `allOf`, and every
component schema it references (transitively) under `components/schemas`, so the original
`#/components/schemas/...` references resolve inside the file unchanged. Patches to the
official schemas are applied here, visibly, and listed under `x-switchboard-patches`.
"""
import copy
import json
import sys

import yaml

SPECS = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/specs"


def refs(node, found):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for v in node.values():
            refs(v, found)
    elif isinstance(node, list):
        for v in node:
            refs(v, found)


def bundle(spec, schema, source, patches=()):
    names, todo = set(), set()
    refs(schema, todo)
    while todo:
        name = todo.pop()
        if name in names:
            continue
        names.add(name)
        refs(spec["components"]["schemas"][name], todo)
    doc = {
        "$comment": f"Extracted from {source}; see README.md.",
        "allOf": [copy.deepcopy(schema)],
        "components": {"schemas": {n: copy.deepcopy(spec["components"]["schemas"][n]) for n in sorted(names)}},
    }
    applied = []
    for why, patch in patches:
        patch(doc)
        applied.append(why)
    if applied:
        doc["x-switchboard-patches"] = applied
    return doc


def write(name, doc):
    with open(name, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write("\n")


twilio = json.load(open(f"{SPECS}/twilio_api_v2010.json"))
for resource in ["Messages", "Calls"]:
    path = f"/2010-04-01/Accounts/{{AccountSid}}/{resource}.json"
    schema = twilio["paths"][path]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    write(f"twilio_{resource.lower()}_create.json", bundle(twilio, schema, f"twilio_api_v2010.json paths.{path}.post (form)"))

meta = yaml.safe_load(open(f"{SPECS}/business-messaging-api_v23.0.yaml"))
path = "/{Version}/{Phone-Number-ID}/messages"
schema = meta["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]


def meta_button_index(doc):
    # The official pattern `^[2-6, 11-14]$` is a malformed character class that refuses "0",
    # the index Meta's own authentication-template examples give the copy-code button.
    prop = doc["components"]["schemas"]["TemplateComponent"]["properties"]["index"]
    assert prop["pattern"] == "^[2-6, 11-14]$"
    prop["pattern"] = "^[0-9]+$"


write("meta_messages_send.json", bundle(meta, schema, f"business-messaging-api_v23.0.yaml paths.{path}.post", [
    ("TemplateComponent.index: malformed pattern ^[2-6, 11-14]$ replaced by ^[0-9]+$ (button index 0 is Meta's own example)", meta_button_index),
]))


def vonage_rcs(doc):
    # Vonage's newest official spec (1.4.0) predates RCS: add an `rcs` text message shaped like
    # the SMS one (Vonage's RCS docs: message_type text, channel rcs, to, from, text, ttl
    # 300..259200, client_ref, webhook_url).
    doc["allOf"][0]["oneOf"].append({
        "$comment": "switchboard patch: RCS text, absent from the official 1.4.0 spec",
        "type": "object",
        "additionalProperties": False,
        "required": ["message_type", "channel", "to", "from", "text"],
        "properties": {
            "message_type": {"type": "string", "enum": ["text"]},
            "channel": {"type": "string", "enum": ["rcs"]},
            "to": {"type": "string", "pattern": "^[1-9][0-9]{6,14}$"},
            "from": {"type": "string", "minLength": 1, "maxLength": 100},
            "text": {"type": "string", "minLength": 1, "maxLength": 3072},
            "ttl": {"type": "integer", "minimum": 300, "maximum": 259200},
            "client_ref": {"type": "string", "maxLength": 100},
            "webhook_url": {"type": "string", "format": "uri"},
        },
    })


def vonage_message_field(doc):
    # baseMessageType requires a `message` property that no message type defines and the API
    # does not take (every real request, including Vonage's examples, lacks it).
    base = doc["components"]["schemas"]["baseMessageType"]
    base["required"] = [r for r in base["required"] if r != "message"]


vonage = json.load(open(f"{SPECS}/vonage_messages-olympus_1.4.0.json"))
schema = vonage["paths"]["/"]["post"]["requestBody"]["content"]["application/json"]["schema"]
write("vonage_messages_send.json", bundle(vonage, schema, "vonage_messages-olympus_1.4.0.json paths./.post", [
    ("rcs: the 1.4.0 spec has no rcs channel; an rcs text message is added to the oneOf", vonage_rcs),
    ("baseMessageType: `message` dropped from required (undefined, never sent)", vonage_message_field),
]))


def operation_parameters(spec, path, method):
    """The parameters of one operation (path-level and operation-level, `$ref`s resolved) as
    {name: {"in", "required", "schema"}}: what a GET request is validated against."""
    def resolve(p):
        ref = p.get("$ref")
        if ref:
            return spec["components"]["parameters"][ref.rsplit("/", 1)[1]]
        return p
    item = spec["paths"][path]
    out = {}
    for p in item.get("parameters", []) + item[method].get("parameters", []):
        p = resolve(p)
        out[p["name"]] = {"in": p["in"], "required": bool(p.get("required")), "schema": p["schema"],
                          "description": p.get("description", "")}
    return out


lookups = json.load(open(f"{SPECS}/twilio_lookups_v2.json"))
path = "/v2/PhoneNumbers/{PhoneNumber}"
write("twilio_lookup_fetch.json", {
    "$comment": f"Extracted from twilio_lookups_v2.json paths.{path}.get; see README.md.",
    "server": lookups["servers"][0]["url"],
    "path": path,
    "parameters": operation_parameters(lookups, path, "get"),
})

insight = yaml.safe_load(open(f"{SPECS}/vonage_number-insight_1.1.2.yml"))
path = "/advanced/{format}"
params = operation_parameters(insight, path, "get")
# The spec authenticates with two query keys (securitySchemes apiKey / apiSecret).
for scheme in insight["components"]["securitySchemes"].values():
    params[scheme["name"]] = {"in": scheme["in"], "required": True, "schema": {"type": "string", "minLength": 1}}
write("vonage_insight_advanced.json", {
    "$comment": f"Extracted from vonage_number-insight_1.1.2.yml paths.{path}.get (and its securitySchemes); see README.md.",
    "server": insight["servers"][0]["url"],
    "path": path,
    "parameters": params,
})
