#!/usr/bin/python3
"""Export the torchvision zoo of issue 17 to ONNX at opsets 13 and 17, for scripts/bench-zoo.ts.

DEV-TIME ONLY. Run with Debian's interpreter, which has python3-torch 1.13 and torchvision 0.14
(the pyenv python3 on PATH does not):

    /usr/bin/python3 scripts/export-tv-zoo.py                 # all 14, both opsets, into /work/zoo
    /usr/bin/python3 scripts/export-tv-zoo.py --out DIR --only resnet18,vit-s16 --opsets 17
    /usr/bin/python3 scripts/export-tv-zoo.py --with-vit-b16 --only vit_b_16  # add the full ViT-B/16 (~350 MB a file)

Nothing is downloaded: every model is built with weights=None and a seeded random init, so the
files are the same on every run of this script with the same torch/torchvision (the manifest
records the sha256). The weights mean nothing (no accuracy); the files are for the pruning and
latency benchmark, which only needs the real architectures. The files are big (ResNet-50 ~100 MB,
all of them ~1.3 GB) and live OUTSIDE git: regenerate them with the command above, never commit them.

Random init is trimmed to look trained where it matters to the graph and its numbers:
  * BatchNorm running statistics are measured (a few train-mode passes over smooth inputs, then
    eval), so the eval-mode export folds sane scales into the convolutions and deep nets do not
    overflow;
  * parameters that init leaves constant (norm scales 1, zero biases, ViT's zero head) get a little
    seeded noise: the exporter deduplicates identical initializers into one shared tensor, which
    would tie layers that are separate in a trained model.

Writes <out>/<name>-op<N>.onnx and <out>/manifest.json: per file name, opset, file, bytes, sha256,
input name/shape, output names/shapes (as torch produced them), the torch parameter count, and the
export time.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torchvision
from torchvision import models as tv
from torchvision.models.vision_transformer import VisionTransformer

SEED = 1234
OPSETS = (13, 17)
SHAPE = [1, 3, 224, 224]


def vit_s16() -> nn.Module:
    # A smaller ViT with ViT-B/16's patching and 224 input: 6 layers, 6 heads, width 384 (DeiT-S-like widths)
    return VisionTransformer(image_size=224, patch_size=16, num_layers=6, num_heads=6, hidden_dim=384, mlp_dim=1536)


# name, builder: the 14 architectures issue 17 names (ViT as the smaller vit-s16 by default)
ZOO = (
    ("resnet18", lambda: tv.resnet18(weights=None)),
    ("resnet50", lambda: tv.resnet50(weights=None)),
    ("mobilenet_v2", lambda: tv.mobilenet_v2(weights=None)),
    ("mobilenet_v3_small", lambda: tv.mobilenet_v3_small(weights=None)),
    ("mobilenet_v3_large", lambda: tv.mobilenet_v3_large(weights=None)),
    ("efficientnet_b0", lambda: tv.efficientnet_b0(weights=None)),
    ("shufflenet_v2_x1_0", lambda: tv.shufflenet_v2_x1_0(weights=None)),
    ("squeezenet1_1", lambda: tv.squeezenet1_1(weights=None)),
    ("densenet121", lambda: tv.densenet121(weights=None)),
    # aux heads are training-only; init_weights given so torchvision does not warn about the default
    ("googlenet", lambda: tv.googlenet(weights=None, aux_logits=False, init_weights=True)),
    ("regnet_x_400mf", lambda: tv.regnet_x_400mf(weights=None)),
    ("mnasnet0_5", lambda: tv.mnasnet0_5(weights=None)),
    ("convnext_tiny", lambda: tv.convnext_tiny(weights=None)),
    ("vit-s16", vit_s16),
)
EXTRA = {"vit_b_16": lambda: tv.vit_b_16(weights=None)}


def smooth_input(shape: list[int]) -> np.ndarray:
    i = np.arange(int(np.prod(shape)), dtype=np.float64)
    return (np.sin(i * 0.0137) * 0.8 + np.cos(i * 0.00071) * 0.5).astype(np.float32).reshape(shape)


def vary_constants(model: nn.Module, gen: torch.Generator) -> None:
    """Constant parameters (all elements equal) get seeded noise, so no two are identical."""
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() > 1 and bool((p == p.flatten()[0]).all()):
                base = p.flatten()[0].item()
                scale = 0.1 if base != 0 else 0.02
                p.add_(scale * torch.randn(p.shape, generator=gen))


def settle_batchnorm(model: nn.Module, gen: torch.Generator) -> None:
    """Measure BN running stats on a few smooth, noisy batches (cumulative average), then eval."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the passes below
    model.train()
    with torch.no_grad():
        for k in range(3):
            base = torch.from_numpy(smooth_input([4] + SHAPE[1:]))
            model(base * (1 + 0.25 * k) + 0.3 * torch.randn(base.shape, generator=gen))
    for m in bns:
        m.momentum = 0.1
    model.eval()


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="/work/zoo")
    ap.add_argument("--only", help="comma-separated names")
    ap.add_argument("--opsets", default=",".join(map(str, OPSETS)))
    ap.add_argument("--with-vit-b16", action="store_true", help="also the full ViT-B/16 (slow to prune and time)")
    a = ap.parse_args()
    opsets = [int(o) for o in a.opsets.split(",")]
    zoo = list(ZOO) + ([("vit_b_16", EXTRA["vit_b_16"])] if a.with_vit_b16 else [])
    only = set(a.only.split(",")) if a.only else None
    if only:
        unknown = only - {n for n, _ in zoo}
        if unknown:
            raise SystemExit(f"unknown --only names: {sorted(unknown)}")
        zoo = [z for z in zoo if z[0] in only]
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(2)
    manifest_path = os.path.join(a.out, "manifest.json")
    # merge into an existing manifest so the zoo can be exported in pieces
    old = []
    if os.path.exists(manifest_path):
        with open(manifest_path, encoding="utf-8") as f:
            old = json.load(f).get("models", [])
    entries = {(e["name"], e["opset"]): e for e in old}
    t_all = time.time()
    for name, build in zoo:
        torch.manual_seed(SEED)
        gen = torch.Generator().manual_seed(SEED)
        model = build()
        vary_constants(model, gen)
        settle_batchnorm(model, gen)
        model.eval()
        params = sum(p.numel() for p in model.parameters())
        x = torch.from_numpy(smooth_input(SHAPE))
        with torch.no_grad():
            y = model(x)
        if not bool(torch.isfinite(y).all()):
            raise SystemExit(f"{name}: non-finite output after init")
        for opset in opsets:
            fname = f"{name}-op{opset}.onnx"
            path = os.path.join(a.out, fname)
            t0 = time.time()
            # grad enabled on purpose: under no_grad torch 1.13's encoder layers take a fused fast
            # path (aten::_transformer_encoder_layer_fwd) that has no ONNX form
            torch.onnx.export(
                model, x, path + ".tmp",
                input_names=["input"], output_names=["output"],
                opset_version=opset, do_constant_folding=True,
                training=torch.onnx.TrainingMode.EVAL,
            )
            os.replace(path + ".tmp", path)
            secs = time.time() - t0
            size = os.path.getsize(path)
            entries[(name, opset)] = {
                "name": name,
                "opset": opset,
                "file": fname,
                "bytes": size,
                "sha256": sha256(path),
                "input": {"name": "input", "shape": SHAPE},
                "outputs": [{"name": "output", "shape": list(y.shape)}],
                "params": params,
                "exportSeconds": round(secs, 1),
                # not one of the 14: bench-zoo.ts runs it only when named (--only) or --with-extra
                "extra": name in EXTRA,
            }
            print(f"{fname:32s} {size / 1e6:8.1f} MB  params {params:>10d}  {secs:5.1f} s", flush=True)
    order = {n: i for i, (n, _) in enumerate(list(ZOO) + list(EXTRA.items()))}
    models = sorted(entries.values(), key=lambda e: (e["opset"], order.get(e["name"], 99)))
    manifest = {
        "generator": "scripts/export-tv-zoo.py",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "seed": SEED,
        "note": "weights=None, seeded random init, constants varied, BN running stats measured; eval-mode export, constant folding on",
        "models": models,
    }
    with open(manifest_path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    os.replace(manifest_path + ".tmp", manifest_path)
    total = sum(e["bytes"] for e in models)
    print(f"{len(models)} files in the manifest, {total / 1e6:.0f} MB; this run {time.time() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
