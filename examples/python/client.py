#!/usr/bin/env python3
"""Send a code and check it through the switchboard gRPC API.

Usage:
    python3 client.py 127.0.0.1:50051 --phone +12025550101

The client sends a code, prints the send result, then reads the code the user received from
standard input (or from --code) and checks it. The gRPC stubs are generated at run time from
proto/switchboard/v1/switchboard.proto with grpcio-tools, so nothing generated is committed.

API key: set SB_API_KEY when the sidecar requires keys. (Not SWITCHBOARD_API_KEY: the sidecar
reads every SWITCHBOARD_* variable as configuration, and would refuse an unknown key when both
run from the same shell.)

Exit status: 0 when the check is Approved, 1 for any other outcome, 2 for a gRPC error.
"""

import argparse
import importlib
import importlib.resources
import os
import pathlib
import sys
import tempfile

import grpc
from grpc_tools import protoc

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_PROTO_DIR = HERE.parent.parent / "proto"
PROTO_FILE = "switchboard/v1/switchboard.proto"


def load_stubs(proto_dir: pathlib.Path, out_dir: str):
    """Generates the Python stubs of our proto into out_dir and imports them."""
    well_known = str(importlib.resources.files("grpc_tools") / "_proto")
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{proto_dir}",
            f"-I{well_known}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            PROTO_FILE,
        ]
    )
    if rc != 0:
        sys.exit(f"protoc failed ({rc}) on {proto_dir / PROTO_FILE}")
    sys.path.insert(0, out_dir)
    pb2 = importlib.import_module("switchboard.v1.switchboard_pb2")
    pb2_grpc = importlib.import_module("switchboard.v1.switchboard_pb2_grpc")
    return pb2, pb2_grpc


def stable_code(error: grpc.RpcError) -> str:
    """The stable machine code from the google.rpc.ErrorInfo detail, when there is one."""
    try:
        from google.rpc import error_details_pb2
        from grpc_status import rpc_status
    except ImportError:  # grpcio-status not installed: the gRPC code alone still tells a lot.
        return ""
    status = rpc_status.from_call(error)
    if status is None:
        return ""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address", help="the sidecar's gRPC address, e.g. 127.0.0.1:50051")
    parser.add_argument("--phone", default="+12025550101", help="E.164 number (default: a sandbox number)")
    parser.add_argument("--code", help="the code to check (default: read a line from stdin)")
    parser.add_argument("--proto-dir", type=pathlib.Path, default=DEFAULT_PROTO_DIR)
    args = parser.parse_args()

    api_key = os.environ.get("SB_API_KEY")
    metadata = [("x-api-key", api_key)] if api_key else []

    with tempfile.TemporaryDirectory(prefix="switchboard-stubs-") as out_dir:
        pb2, pb2_grpc = load_stubs(args.proto_dir, out_dir)
        with grpc.insecure_channel(args.address) as channel:
            stub = pb2_grpc.SwitchboardStub(channel)
            try:
                sent = stub.Send(pb2.SendRequest(phone_number=args.phone), metadata=metadata, timeout=30)
                print(
                    f"send: {sent.status_text} channel={sent.channel or '-'} "
                    f"request_id={sent.request_id} resends_left={sent.resends_left}",
                    flush=True,
                )
                if sent.status not in (pb2.SEND_STATUS_SUCCESS, pb2.SEND_STATUS_RETRY):
                    print(f"send refused: {sent.reason}", flush=True)
                    return 1

                code = args.code
                if code is None:
                    print("code: ", end="", file=sys.stderr, flush=True)
                    code = sys.stdin.readline().strip()

                checked = stub.Check(
                    pb2.CheckRequest(phone_number=args.phone, code=code), metadata=metadata, timeout=30
                )
            except grpc.RpcError as e:
                print(f"error: {e.code().name} {stable_code(e) or '-'}: {e.details()}", flush=True)
                return 2

    line = f"check: {checked.status_text}"
    if checked.HasField("reason"):
        line += f" reason={checked.reason}"
    if checked.HasField("attempts_left"):
        line += f" attempts_left={checked.attempts_left}"
    print(line, flush=True)
    print(
        f"phone: {checked.phone.full_number} country={checked.phone.country_code or '-'} "
        f"carrier={checked.phone.carrier.type} status={checked.phone.status}",
        flush=True,
    )
    return 0 if checked.status == pb2.CHECK_STATUS_APPROVED else 1


if __name__ == "__main__":
    sys.exit(main())
