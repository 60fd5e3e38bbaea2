#!/usr/bin/env python
"""The synthetic multi-view set by hand: time per question (generation + rendering, one process) and
the figure of docs/synthetic_multiview.md (a few questions: each view with its key references drawn
under it, the question, the options and the answer).

    python bench/synthetic_mv_samples.py [--n 30] [--seed 0] [--figure docs/synthetic_multiview_samples.png]
"""

from __future__ import annotations

import argparse
import io
import textwrap
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from star_verl.prep.synthetic_mv import generate_question

VIEW_W, VIEW_H, TEXT_H, PAD = 320, 240, 64, 8


def figure(questions, path: Path) -> None:
    font = ImageFont.load_default(size=13)
    bold = ImageFont.load_default(size=15)
    row_h = VIEW_H + TEXT_H + 86
    sheet = Image.new("RGB", (4 * (VIEW_W + PAD) + PAD, len(questions) * row_h + PAD), "white")
    draw = ImageDraw.Draw(sheet)
    for r, q in enumerate(questions):
        top = PAD + r * row_h
        rec = q.record
        header = f"{rec['scene']['setting']} / {rec['kind']}: {rec['question']}"
        for i, line in enumerate(textwrap.wrap(header, 170)[:2]):
            draw.text((PAD, top + i * 18), line, fill="black", font=bold)
        options = "   ".join(f"{k}. {v}" for k, v in rec["options"].items())
        draw.text((PAD, top + 38), options, fill="black", font=font)
        draw.text((PAD, top + 58), f"answer: {rec['answer']} ({rec['options'][rec['answer']]})", fill=(0, 110, 0), font=bold)
        for k, ref in enumerate(q.sample.images):
            x = PAD + k * (VIEW_W + PAD)
            sheet.paste(Image.open(io.BytesIO(ref.data)).convert("RGB"), (x, top + 80))
            draw.text((x + 4, top + 84), f"image {k + 1}", fill="black", font=bold)
            refs = "  ".join(f"[{a}, {b}, {rel}]" for a, b, rel in rec["references"][str(k + 1)])
            for i, line in enumerate(textwrap.wrap(refs, 44)[:3]):
                draw.text((x, top + 84 + VIEW_H + i * 16), line, fill=(20, 20, 160), font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=30, help="questions to time (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    p.add_argument("--figure", type=Path, default=Path("docs/synthetic_multiview_samples.png"), help="the figure (default: %(default)s)")
    args = p.parse_args()
    start = time.process_time()
    questions = [generate_question(i, args.seed) for i in range(args.n)]
    cpu = time.process_time() - start
    views = sum(len(q.sample.images) for q in questions)
    print(f"{args.n} questions, {views} views: {cpu / args.n:.3f} CPU-s per question, {cpu / views:.3f} CPU-s per view (one process)")
    shown = [next(q for q in questions if q.record["scene"]["setting"] == s and q.record["kind"] == k)
             for s, k in (("rotation", "direction"), ("rotation", "turn"), ("around", "move"), ("around", "relation"), ("among", "direction"))]  # fmt: skip
    figure(shown, args.figure)
    print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
