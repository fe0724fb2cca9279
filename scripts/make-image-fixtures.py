#!/usr/bin/python3
"""Real-image fixtures for calibration, fidelity and OCR tests, from scikit-image's sample data.

DEV-TIME ONLY (Debian python3-skimage ships the source PNGs; Pillow does the crops/resizes;
run with /usr/bin/python3). Everything is cut from real photographs and scanned text so that
calibration and fidelity figures reflect what a camera on the device would see, not noise.

Writes (deterministic, no randomness):
  test/fixtures/images/        a few small photos and text pages + preprocess.json (zoo input)
  test/fixtures/ocr/det/       8 text-bearing images for PP-OCR det calibration
  test/fixtures/ocr/rec/       22 single-line crops, exactly 48x320 (PP-OCR rec input size,
                               so the evaluator's "stretch" resize is the identity)
  test/fixtures/ocr/cls/0/     upright line crops, exactly 48x192 (cls input size)
  test/fixtures/ocr/cls/180/   the same kind of crops rotated by 180 degrees; the subfolder
                               names are PP-OCR cls's labels, in its class order ['0', '180']
  test/fixtures/ocr/cls-bw/    a larger cls set from bw_text.png (10 lines of a printed book
                               passage): every crop both upright (0/) and upside down (180/),
                               named by line so a split by name never puts one line on both sides
  test/fixtures/ocr/rec-bw/    48x320 crops of the same lines, for rec
Each OCR folder holds a preprocess.json with PaddleOCR's normalisation for that model.
"""
from __future__ import annotations

import json
import os
import shutil

from PIL import Image, ImageFilter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = "/usr/lib/python3/dist-packages/skimage/data"
FIX = os.path.join(REPO, "test", "fixtures")
INV255 = 1 / 255

PREPROCESS = {
    # PaddleOCR det: BGR, /255, ImageNet mean/std
    "det": {"size": [640, 640], "layout": "NCHW", "color": "BGR", "scale": INV255,
            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "resize": "stretch"},
    # PaddleOCR rec/cls: BGR, /255, then (x - 0.5) / 0.5
    "rec": {"size": [48, 320], "layout": "NCHW", "color": "BGR", "scale": INV255,
            "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "resize": "stretch"},
    "cls": {"size": [48, 192], "layout": "NCHW", "color": "BGR", "scale": INV255,
            "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "resize": "stretch"},
    # the zoo's ImageNet-style CNNs (test/fixtures/zoo, input 1x3x64x64)
    "images": {"size": [64, 64], "layout": "NCHW", "color": "RGB", "scale": INV255,
               "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "resize": "stretch"},
}

# scikit-image sample -> (output name, max side in px or None to keep)
PHOTOS = (
    ("camera.png", "camera.png", None),
    ("coffee.png", "coffee.png", 300),
    ("astronaut.png", "astronaut.png", 256),
    ("chelsea.png", "chelsea.png", 300),
    ("page.png", "page.png", None),
    ("text.png", "text.png", None),
)

REC_W, REC_H = 320, 48
CLS_W, CLS_H = 192, 48

# Line crops of page.png (384x191, printed text, baseline rising ~3 px to the right), as
# (x0, y0, height): width follows from the target aspect so the resize never distorts.
PAGE_LINES_REC = (
    (0, 8, 28), (150, 8, 28),                      # "Region-based segmentation"
    (0, 46, 21), (122, 46, 21), (244, 45, 21),     # "Let us first determine markers of the coins and the"
    (0, 64, 21), (122, 63, 21), (244, 62, 21),     # "background. These markers are pixels that we can label"
    (0, 82, 21), (122, 81, 21), (244, 80, 21),     # "unambiguously as either object or background. Here,"
    (0, 100, 21), (122, 99, 21), (244, 97, 21),    # "the markers are found at the two extreme parts of the"
    (0, 118, 21), (40, 118, 21),                   # "histogram of grey values:"
    (20, 166, 22), (110, 166, 22),                 # ">>> markers = np.zeros_like(coins)"
)
# Handwritten formulae on text.png (448x172), slanted: taller boxes
TEXT_LINES_REC = ((0, 50, 40), (150, 10, 40), (90, 90, 40), (170, 118, 40))
# cls crops (aspect 4): lines 1-4 of page.png at three positions
PAGE_LINES_CLS = tuple((x, y - (1 if x > 150 else 0) - (1 if x > 250 else 0), 21)
                       for y in (46, 64, 82, 100) for x in (0, 150, 300))
PAGE_LINES_CLS += ((0, 118, 21), (20, 166, 22), (60, 8, 28), (180, 8, 28))


# bw_text.png (516x333): 10 printed lines, ink rows (y0, y1) and last ink column per line, from
# its row/column ink profile; crops take 3 px of margin above and below, as a detector's box would
BW_LINES = ((23, 48, 437), (52, 76, 484), (81, 105, 452), (110, 135, 430), (139, 163, 437),
            (169, 194, 466), (198, 223, 456), (227, 252, 432), (256, 276, 416), (285, 305, 203))
BW_X0 = 20  # ink starts at x=25


def bw_crops(out_w: int, out_h: int, step: int) -> list[tuple[int, int, Image.Image]]:
    """(line, x0, crop) for windows of the target aspect slid along each line by `step` px."""
    bw = src("bw_text.png").convert("RGB")
    out = []
    for i, (y0, y1, x1) in enumerate(BW_LINES):
        h = y1 - y0 + 6
        w = round(h * out_w / out_h)
        x = BW_X0
        while True:
            x = min(x, max(BW_X0, x1 + 5 - w))
            out.append((i + 1, x, crop_line(bw, x, y0 - 3, h, out_w, out_h)))
            if x + w >= x1 + 5:
                break
            x += step
    return out


def src(name: str) -> Image.Image:
    return Image.open(os.path.join(SRC, name))


def fit(im: Image.Image, max_side: int | None) -> Image.Image:
    if max_side is None or max(im.size) <= max_side:
        return im
    s = max_side / max(im.size)
    return im.resize((round(im.width * s), round(im.height * s)), Image.LANCZOS)


def save(im: Image.Image, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # optimize: smaller files; PNG is lossless so the pixels are exactly what we computed
    im.save(path + ".tmp.png", optimize=True)
    os.replace(path + ".tmp.png", path)


def write_json(path: str, obj: object) -> None:
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)


def crop_line(im: Image.Image, x0: int, y0: int, h: int, out_w: int, out_h: int) -> Image.Image:
    w = round(h * out_w / out_h)
    x0 = min(x0, im.width - w)
    return im.crop((x0, y0, x0 + w, y0 + h)).resize((out_w, out_h), Image.LANCZOS)


def document_on_table() -> Image.Image:
    """page.png lying slightly rotated on the coffee photo's wooden table: a camera-like shot
    of a document with a textured, coloured background around it."""
    table = src("coffee.png").convert("RGB").crop((0, 0, 400, 400))
    page = src("page.png").convert("RGB").resize((320, 159), Image.LANCZOS)
    mask = Image.new("L", page.size, 255)
    page = page.rotate(4, resample=Image.BICUBIC, expand=True)
    mask = mask.rotate(4, resample=Image.BICUBIC, expand=True).filter(ImageFilter.GaussianBlur(0.8))
    table.paste(page, (30, 110), mask)
    return table


def det_images() -> list[tuple[str, Image.Image]]:
    page = src("page.png").convert("L")
    text = src("text.png").convert("L")
    rocket = src("rocket.jpg").convert("RGB")
    side = min(rocket.size)
    return [
        ("page-left.png", page.crop((0, 0, 192, 191)).resize((384, 382), Image.LANCZOS)),
        ("page-right.png", page.crop((192, 0, 384, 191)).resize((384, 382), Image.LANCZOS)),
        ("page-code.png", page.crop((0, 95, 192, 191)).resize((384, 192), Image.LANCZOS)),
        ("document-on-table.png", document_on_table()),
        ("text-left.png", text.crop((0, 0, 172, 172)).resize((344, 344), Image.LANCZOS)),
        ("text-right.png", text.crop((276, 0, 448, 172)).resize((344, 344), Image.LANCZOS)),
        ("astronaut.png", src("astronaut.png").convert("RGB").resize((320, 320), Image.LANCZOS)),
        ("rocket.png", rocket.crop(((rocket.width - side) // 2, 0, (rocket.width + side) // 2, side)).resize((320, 320), Image.LANCZOS)),
    ]


def reset(path: str) -> None:
    # outputs are fully regenerated: stale crops from an older table must not linger
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)


def main() -> None:
    images = os.path.join(FIX, "images")
    reset(images)
    for name, out, max_side in PHOTOS:
        save(fit(src(name), max_side), os.path.join(images, out))
    write_json(os.path.join(images, "preprocess.json"), PREPROCESS["images"])

    det = os.path.join(FIX, "ocr", "det")
    reset(det)
    for name, im in det_images():
        save(im, os.path.join(det, name))
    write_json(os.path.join(det, "preprocess.json"), PREPROCESS["det"])

    rec = os.path.join(FIX, "ocr", "rec")
    reset(rec)
    page = src("page.png").convert("RGB")
    text = src("text.png").convert("RGB")
    n = 0
    for x, y, h in PAGE_LINES_REC:
        n += 1
        save(crop_line(page, x, y, h, REC_W, REC_H), os.path.join(rec, f"page-{n:02d}.png"))
    for x, y, h in TEXT_LINES_REC:
        n += 1
        save(crop_line(text, x, y, h, REC_W, REC_H), os.path.join(rec, f"text-{n:02d}.png"))
    write_json(os.path.join(rec, "preprocess.json"), PREPROCESS["rec"])

    cls = os.path.join(FIX, "ocr", "cls")
    reset(cls)
    for i, (x, y, h) in enumerate(PAGE_LINES_CLS):
        line = crop_line(page, x, y, h, CLS_W, CLS_H)
        # every other crop upside down: balanced classes for an accuracy figure
        if i % 2 == 1:
            save(line.rotate(180), os.path.join(cls, "180", f"page-{i + 1:02d}.png"))
        else:
            save(line, os.path.join(cls, "0", f"page-{i + 1:02d}.png"))
    write_json(os.path.join(cls, "preprocess.json"), PREPROCESS["cls"])

    cls_bw = os.path.join(FIX, "ocr", "cls-bw")
    reset(cls_bw)
    for line, x, crop in bw_crops(CLS_W, CLS_H, 100):
        save(crop, os.path.join(cls_bw, "0", f"bw-L{line:02d}-x{x:03d}.png"))
        save(crop.rotate(180), os.path.join(cls_bw, "180", f"bw-L{line:02d}-x{x:03d}.png"))
    write_json(os.path.join(cls_bw, "preprocess.json"), PREPROCESS["cls"])

    rec_bw = os.path.join(FIX, "ocr", "rec-bw")
    reset(rec_bw)
    for line, x, crop in bw_crops(REC_W, REC_H, 120):
        save(crop, os.path.join(rec_bw, f"bw-L{line:02d}-x{x:03d}.png"))
    write_json(os.path.join(rec_bw, "preprocess.json"), PREPROCESS["rec"])

    total = 0
    for root in (images, os.path.join(FIX, "ocr")):
        for d, _, files in os.walk(root):
            total += sum(os.path.getsize(os.path.join(d, f)) for f in files)
    print(f"wrote image fixtures: {total} bytes")


if __name__ == "__main__":
    main()
