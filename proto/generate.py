#!/usr/bin/env python3
"""Generate the Python API code from proto/ into minik8s/api/.

Usage: python proto/generate.py [--check]

--check regenerates into a temporary directory and fails if the committed
code differs (CI runs it so the generated code can never go stale).
"""
from __future__ import annotations

import filecmp
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
GENERATED = Path("minik8s/api/v1")


def generate(out: Path) -> list[Path]:
    """Run protoc on every .proto file; return the generated files."""
    sources = sorted(PROTO_DIR.rglob("*.proto"))
    include = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *(str(s.relative_to(PROTO_DIR)) for s in sources),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted((out / GENERATED).glob("*_pb2*.py*"))


def main() -> int:
    check = "--check" in sys.argv[1:]
    if not check:
        generate(ROOT)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        stale = [
            f.name
            for f in fresh
            if not (ROOT / GENERATED / f.name).exists()
            or not filecmp.cmp(f, ROOT / GENERATED / f.name, shallow=False)
        ]
    if stale:
        print(f"generated API code is stale: {', '.join(stale)}; run `make proto`")
        return 1
    print("generated API code is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
