#!/usr/bin/python3
"""Calibrate / judge line crops for PP-OCR rec and cls, rendered like the det sets.

DEV-TIME ONLY: run with /usr/bin/python3 (python3-pil, python3-skimage, Debian's fonts).
Deterministic (seeded). Uses the text, fonts and photos of scripts/make-det-set.py, split the
same way: the calibrate crops use its calibrate text, DejaVu/Lato-Regular/Bold fonts and
calibrate photos, the judge crops its judge text, Liberation/Lato-Light/Black and judge photos,
so a fit run as `edgefit fit rec.onnx --calib <dir>/calibrate --judge <dir>/judge` (or just
`--calib <dir>`) never judges on a line, font or background that calibrated it.

Writes (test data, not package data; licences in test/fixtures/LICENSES.md):
  test/fixtures/ocr/rec-lines/{calibrate,judge}/line-NN.png   16 each, exactly 48x320 (rec's input,
      so the loader's stretch resize is the identity; text left-aligned, padded right as PaddleOCR
      pads), with truth.tsv (file, text) for accuracy against the printed text
  test/fixtures/ocr/cls-lines/{calibrate,judge}/{0,180}/line-NN.png   8 upright + 8 upside-down
      each, exactly 48x192; the subfolder names are PP-OCR cls's labels in its class order
"""
from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil

from PIL import Image, ImageDraw, ImageFilter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("make_det_set", os.path.join(REPO, "scripts", "make-det-set.py"))
det = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(det)

OCR = os.path.join(REPO, "test", "fixtures", "ocr")
REC = {"size": [48, 320], "layout": "NCHW", "color": "BGR", "scale": 1 / 255,
       "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "resize": "stretch"}
CLS = {**REC, "size": [48, 192]}


def phrases(split: dict, rnd: random.Random) -> list[str]:
    """Short runs of words from the split's sentences, plus its sign, item and form texts."""
    out = []
    for s in split["sentences"]:
        words = s.split()
        i = 0
        while i < len(words):
            n = rnd.randint(2, 4)
            out.append(" ".join(words[i:i + n]))
            i += n
    out += split["signs"] + split["items"] + [f"{f}: {v}" for f, v in zip(split["fields"], split["values"])]
    rnd.shuffle(out)
    return out


def render(split: dict, rnd: random.Random, text: str, w: int, h: int, k: int) -> Image.Image | None:
    """One line on paper, on a sign colour, or on a photo band; None when it does not fit at a readable size."""
    kind = k % 3
    face = rnd.choice(["sans", "serif", "mono", "bold", "cond", "light", "display"])
    size = rnd.randint(24, 32)
    f = det.font(split, face, size)
    while f.getlength(text) > w - 12 and size > 18:
        size -= 1
        f = det.font(split, face, size)
    if f.getlength(text) > w - 12:
        return None
    if kind == 0:
        img = det.paper(w, h, rnd)
        ink = (rnd.randint(0, 50),) * 3
    elif kind == 1:
        bg = rnd.choice([(20, 90, 40), (150, 20, 20), (20, 40, 120), (35, 35, 35)])
        img = Image.new("RGB", (w, h), bg)
        ink = (245, 245, 240)
    else:
        img = det.cover(det.photo(rnd.choice(split["photos"])), w, h, rnd).filter(ImageFilter.GaussianBlur(2))
        band = Image.new("RGB", (w, h), (250, 250, 245))
        img = Image.blend(img, band, 0.7)
        ink = (rnd.randint(0, 40),) * 3
    d = ImageDraw.Draw(img)
    x = rnd.randint(4, 10)
    d.text((x, h // 2 + rnd.randint(-2, 2)), text, font=f, fill=ink, anchor="lm")
    if rnd.random() < 0.4:
        img = img.filter(ImageFilter.GaussianBlur(rnd.uniform(0.4, 0.9)))
    return img


def lines(split_name: str, seed: int, count: int, w: int, h: int) -> list[tuple[str, Image.Image]]:
    split = det.SPLITS[split_name]
    rnd = random.Random(seed)
    out: list[tuple[str, Image.Image]] = []
    for text in phrases(split, rnd):
        if len(out) == count:
            break
        img = render(split, rnd, text, w, h, len(out))
        if img is not None:
            out.append((text, img))
    assert len(out) == count, (split_name, len(out))
    return out


def write_spec(d: str, spec: dict) -> None:
    with open(os.path.join(d, "preprocess.json"), "w") as f:
        json.dump(spec, f, indent=2)
        f.write("\n")


def main() -> None:
    for base in ("rec-lines", "cls-lines"):
        shutil.rmtree(os.path.join(OCR, base), ignore_errors=True)
    for seed, split in enumerate(("calibrate", "judge"), start=48):
        d = os.path.join(OCR, "rec-lines", split)
        os.makedirs(d)
        write_spec(d, REC)
        truth = []
        for i, (text, img) in enumerate(lines(split, seed, 16, 320, 48)):
            name = f"line-{i + 1:02d}.png"
            img.save(os.path.join(d, name), optimize=True)
            truth.append(f"{name}\t{text}\n")
        with open(os.path.join(d, "truth.tsv"), "w") as f:
            f.writelines(truth)
        d = os.path.join(OCR, "cls-lines", split)
        for cls in ("0", "180"):
            os.makedirs(os.path.join(d, cls))
        write_spec(d, CLS)
        for i, (_, img) in enumerate(lines(split, seed + 100, 16, 192, 48)):
            cls = "0" if i % 2 == 0 else "180"
            img = img if cls == "0" else img.rotate(180)
            img.save(os.path.join(d, cls, f"line-{i + 1:02d}.png"), optimize=True)
    for base in ("rec-lines", "cls-lines"):
        n = sum(len(fs) for _, _, fs in os.walk(os.path.join(OCR, base)))
        size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(os.path.join(OCR, base)) for f in fs)
        print(f"test/fixtures/ocr/{base}: {n} files, {size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
