#!/usr/bin/python3
"""Export a zoo of small PyTorch architectures to ONNX at opsets 13 and 17.

DEV-TIME ONLY (Debian python3-torch 1.13; run with /usr/bin/python3). These are the
exports users bring most often, written by hand at small widths (no torchvision, nothing
downloaded): ResNet, MobileNetV2, MobileNetV3, EfficientNet, ShuffleNetV2, DenseNet, a
transformer encoder and an LSTM classifier. Weights are random (fixed seed): the files
exercise edgefit's codec, shape inference, analysis and passes, not accuracy.

Writes test/fixtures/zoo/<name>-op<N>.onnx and test/fixtures/zoo/manifest.json with, per
file: input names/shapes/dtypes, output names and the shapes torch produced, the torch
parameter count, and torch's outputs on a deterministic input (`probe`) so a test can check
onnxruntime reproduces them.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "test", "fixtures", "zoo")
SEED = 1234
OPSETS = (13, 17)
PROBE_RULE = "x[i] = float32(sin(i*0.0137)*0.8 + cos(i*0.00071)*0.5), i over the flattened C-order input"


def conv_bn(cin: int, cout: int, k: int = 3, s: int = 1, groups: int = 1, act: type[nn.Module] | None = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


# ---------------------------------------------------------------- ResNet (basic blocks)
class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1 = conv_bn(cin, cout, 3, stride)
        self.c2 = conv_bn(cout, cout, 3, 1, act=None)
        # downsample shortcut: 1x1 strided conv + BN when the shape changes
        self.down = conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.c2(self.c1(x)) + self.down(x))


class ResNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = conv_bn(3, 16, 3, 2)
        self.layers = nn.Sequential(
            BasicBlock(16, 16, 1), BasicBlock(16, 16, 1),
            BasicBlock(16, 32, 2), BasicBlock(32, 32, 1),
            BasicBlock(32, 64, 2), BasicBlock(64, 64, 1),
        )
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ---------------------------------------------------------------- MobileNetV2
class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.body = nn.Sequential(
            conv_bn(cin, mid, 1, act=nn.ReLU6),
            conv_bn(mid, mid, 3, stride, groups=mid, act=nn.ReLU6),  # depthwise
            conv_bn(mid, cout, 1, act=None),  # linear bottleneck
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.use_res else y


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        cfg = [(16, 24, 2, 4), (24, 24, 1, 4), (24, 32, 2, 4), (32, 32, 1, 4), (32, 64, 2, 4), (64, 64, 1, 4)]
        self.stem = conv_bn(3, 16, 3, 2, act=nn.ReLU6)
        self.blocks = nn.Sequential(*[InvertedResidual(*c) for c in cfg])
        self.head = conv_bn(64, 256, 1, act=nn.ReLU6)
        self.fc = nn.Sequential(nn.Dropout(0.2), nn.Linear(256, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ---------------------------------------------------------------- MobileNetV3 (HardSwish, SE + HardSigmoid)
class SqueezeExcite(nn.Module):
    """GlobalAveragePool -> Conv -> act -> Conv -> gate -> Mul: the SE pattern pruning must respect."""

    def __init__(self, c: int, squeeze: int, act: type[nn.Module], gate: type[nn.Module]) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(c, squeeze, 1)
        self.act = act()
        self.fc2 = nn.Conv2d(squeeze, c, 1)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))


class V3Block(nn.Module):
    def __init__(self, cin: int, mid: int, cout: int, k: int, stride: int, se: bool, act: type[nn.Module]) -> None:
        super().__init__()
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if mid != cin:
            layers.append(conv_bn(cin, mid, 1, act=act))
        layers.append(conv_bn(mid, mid, k, stride, groups=mid, act=act))
        if se:
            layers.append(SqueezeExcite(mid, max(8, mid // 4), nn.ReLU, nn.Hardsigmoid))
        layers.append(conv_bn(mid, cout, 1, act=None))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.use_res else y


class MobileNetV3(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        hs, re = nn.Hardswish, nn.ReLU
        self.stem = conv_bn(3, 16, 3, 2, act=hs)
        self.blocks = nn.Sequential(
            V3Block(16, 16, 16, 3, 2, True, re),
            V3Block(16, 64, 24, 3, 2, False, re),
            V3Block(24, 72, 24, 3, 1, False, re),
            V3Block(24, 96, 40, 5, 2, True, hs),
            V3Block(40, 120, 40, 5, 1, True, hs),
        )
        self.head = conv_bn(40, 240, 1, act=hs)
        self.fc = nn.Sequential(nn.Linear(240, 128), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(128, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ---------------------------------------------------------------- EfficientNet (SiLU, SE + Sigmoid)
class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(conv_bn(cin, mid, 1, act=nn.SiLU))
        layers += [
            conv_bn(mid, mid, k, stride, groups=mid, act=nn.SiLU),
            SqueezeExcite(mid, max(4, cin // 4), nn.SiLU, nn.Sigmoid),
            conv_bn(mid, cout, 1, act=None),
        ]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.use_res else y


class EfficientNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = conv_bn(3, 16, 3, 2, act=nn.SiLU)
        self.blocks = nn.Sequential(
            MBConv(16, 16, 3, 1, 1),
            MBConv(16, 24, 3, 2, 4), MBConv(24, 24, 3, 1, 4),
            MBConv(24, 40, 5, 2, 4), MBConv(40, 40, 5, 1, 4),
            MBConv(40, 64, 3, 2, 4),
        )
        self.head = conv_bn(64, 256, 1, act=nn.SiLU)
        self.fc = nn.Sequential(nn.Dropout(0.2), nn.Linear(256, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ---------------------------------------------------------------- ShuffleNetV2 (split, concat, shuffle)
def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape
    x = x.view(b, groups, c // groups, h, w).transpose(1, 2).contiguous()
    return x.view(b, c, h, w)


class ShuffleUnit(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        half = cout // 2
        bin_ = cin if stride == 2 else cin // 2
        if stride == 2:
            self.left = nn.Sequential(conv_bn(cin, cin, 3, 2, groups=cin, act=None), conv_bn(cin, half, 1))
        self.right = nn.Sequential(
            conv_bn(bin_, half, 1),
            conv_bn(half, half, 3, stride, groups=half, act=None),
            conv_bn(half, half, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            a, b = x.chunk(2, dim=1)  # channel split
            out = torch.cat((a, self.right(b)), 1)
        else:
            out = torch.cat((self.left(x), self.right(x)), 1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 24, 3, 2), nn.MaxPool2d(3, 2, 1))
        self.stages = nn.Sequential(
            ShuffleUnit(24, 48, 2), ShuffleUnit(48, 48, 1),
            ShuffleUnit(48, 96, 2), ShuffleUnit(96, 96, 1), ShuffleUnit(96, 96, 1),
        )
        self.head = conv_bn(96, 256, 1)
        self.fc = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.stages(self.stem(x)))
        return self.fc(x.mean([2, 3]))


# ---------------------------------------------------------------- DenseNet (concat growth, pre-activation BN)
class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        # BN-ReLU-Conv: BN before the conv cannot be folded, so BatchNormalization stays in the export
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, 4 * growth, 1, bias=False),
            nn.BatchNorm2d(4 * growth), nn.ReLU(), nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((x, self.body(x)), 1)


class DenseNet(nn.Module):
    def __init__(self, num_classes: int = 10, growth: int = 12) -> None:
        super().__init__()
        c = 24
        layers: list[nn.Module] = [nn.Conv2d(3, c, 3, 2, 1, bias=False)]
        for i, n in enumerate((3, 3, 3)):
            for _ in range(n):
                layers.append(DenseLayer(c, growth))
                c += growth
            if i < 2:  # transition: BN-ReLU-1x1 conv halving channels, 2x2 average pool
                layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2)]
                c //= 2
        layers += [nn.BatchNorm2d(c), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


# ---------------------------------------------------------------- Transformer encoder
class TransformerClassifier(nn.Module):
    def __init__(self, features: int = 32, d_model: int = 64, heads: int = 4, layers: int = 2, num_classes: int = 10) -> None:
        super().__init__()
        self.inp = nn.Linear(features, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=128, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        # TransformerEncoder deep-copies one layer, so every layer starts with identical weights
        # and the exporter would deduplicate them into one shared set (Identity nodes). Trained
        # layers differ: draw fresh weights per layer.
        for enc_layer in self.encoder.layers:
            enc_layer.self_attn._reset_parameters()
            enc_layer.self_attn.out_proj.reset_parameters()
            enc_layer.linear1.reset_parameters()
            enc_layer.linear2.reset_parameters()
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.inp(x))
        return self.head(self.norm(h.mean(1)))


# ---------------------------------------------------------------- LSTM classifier
class LstmClassifier(nn.Module):
    def __init__(self, features: int = 32, hidden: int = 64, num_classes: int = 10) -> None:
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, num_layers=1, batch_first=True)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


IMAGE = ("x", [1, 3, 64, 64])
SEQUENCE = ("x", [1, 16, 32])
ZOO = (
    ("resnet", "ResNet-style: basic blocks, residual Add, 1x1 strided downsample shortcut", ResNet, IMAGE),
    ("mobilenetv2", "MobileNetV2-style: inverted residuals, depthwise Conv, ReLU6 (Clip)", MobileNetV2, IMAGE),
    ("mobilenetv3", "MobileNetV3-style: HardSwish, SE with HardSigmoid, 5x5 depthwise", MobileNetV3, IMAGE),
    ("efficientnet", "EfficientNet-style: MBConv, SiLU, SE with Sigmoid", EfficientNet, IMAGE),
    ("shufflenetv2", "ShuffleNetV2-style: channel split, Concat, channel shuffle Reshape/Transpose", ShuffleNetV2, IMAGE),
    ("densenet", "DenseNet-style: Concat growth, pre-activation BatchNormalization, transitions", DenseNet, IMAGE),
    ("transformer", "Transformer encoder: input Linear, 2 layers d_model 64, 4 heads, LayerNorm, head", TransformerClassifier, SEQUENCE),
    ("lstm", "LSTM classifier: 1 layer hidden 64, last step -> Linear", LstmClassifier, SEQUENCE),
)


def probe_input(shape: list[int]) -> np.ndarray:
    i = np.arange(int(np.prod(shape)), dtype=np.float64)
    return (np.sin(i * 0.0137) * 0.8 + np.cos(i * 0.00071) * 0.5).astype(np.float32).reshape(shape)


def trained_like(model: nn.Module, gen: torch.Generator) -> None:
    """Fresh init leaves every norm at scale 1 / shift 0 and attention biases at 0. Trained
    models never look like that, and identical tensors would be deduplicated by the exporter
    (shared initializers behind Identity nodes), so give them varied values."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
            elif isinstance(m, nn.MultiheadAttention):
                m.in_proj_bias.copy_(0.02 * torch.randn(m.in_proj_bias.shape, generator=gen))
                m.out_proj.bias.copy_(0.02 * torch.randn(m.out_proj.bias.shape, generator=gen))


def settle_batchnorm(model: nn.Module, shape: list[int], gen: torch.Generator) -> None:
    """Give BN layers non-trivial running stats (as a trained model has) with a few train-mode
    passes over smooth inputs, so folding/unfolding BN is actually exercised."""
    model.train()
    with torch.no_grad():
        for k in range(4):
            base = torch.from_numpy(probe_input([4] + shape[1:]))
            model(base * (1 + 0.25 * k) + 0.1 * torch.randn(base.shape, generator=gen))
    model.eval()


def main() -> None:
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    entries = []
    for name, description, cls, (in_name, shape) in ZOO:
        torch.manual_seed(SEED)
        gen = torch.Generator().manual_seed(SEED)
        model = cls()
        trained_like(model, gen)
        if any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
            settle_batchnorm(model, shape, gen)
        model.eval()
        params = sum(p.numel() for p in model.parameters())
        x = torch.from_numpy(probe_input(shape))
        with torch.no_grad():
            y = model(x)
        for opset in OPSETS:
            fname = f"{name}-op{opset}.onnx"
            path = os.path.join(OUT, fname)
            # Exported with grad enabled on purpose: under no_grad torch 1.13's TransformerEncoder
            # takes its fused fast path (aten::_transformer_encoder_layer_fwd), which has no ONNX form.
            torch.onnx.export(
                model, x, path + ".tmp",
                input_names=[in_name], output_names=["logits"],
                dynamic_axes={in_name: {0: "N"}, "logits": {0: "N"}},
                opset_version=opset, do_constant_folding=True,
            )
            os.replace(path + ".tmp", path)
            with open(path, "rb") as f:
                data = f.read()
            size = len(data)
            if size > 1_500_000:
                raise SystemExit(f"{fname} is {size} bytes, over the 1.5 MB fixture limit")
            entries.append({
                "name": name,
                "description": description,
                "file": fname,
                "opset": opset,
                "bytes": size,
                "sha256": hashlib.sha256(data).hexdigest(),
                "inputs": [{"name": in_name, "dtype": "float32", "shape": shape, "dynamic": {"0": "N"}}],
                "outputs": [{"name": "logits", "dtype": "float32", "shape": list(y.shape)}],
                "params": params,
                "probe": {"rule": PROBE_RULE, "output": [round(float(v), 7) for v in y.flatten()]},
            })
            print(f"{fname:28s} {size:9d} bytes  params {params}", flush=True)
    manifest = {
        "generator": "scripts/export-zoo.py",
        "torch": torch.__version__,
        "seed": SEED,
        "note": "random weights (fixed seed), BN running stats settled on smooth inputs; eval-mode export folds Conv+BN",
        "paramsNote": "params = torch's parameter count (BN weight/bias counted, running stats not); the ONNX float count "
        "differs where the export folds BN into Conv or keeps running stats: see test/fixtures/param-counts.json",
        "probeRule": PROBE_RULE,
        "models": entries,
    }
    with open(os.path.join(OUT, "manifest.json.tmp"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    os.replace(os.path.join(OUT, "manifest.json.tmp"), os.path.join(OUT, "manifest.json"))
    total = sum(e["bytes"] for e in entries)
    print(f"{len(entries)} files, {total} bytes total")


if __name__ == "__main__":
    sys.exit(main())
