#!/usr/bin/env python
"""Draw docs/images/tvr_synthetic_examples.png: synthetic TVR samples (the initial image from the
center camera, with the indices the question lists, then the final state from the center, left and
right cameras) and their ground-truth answers.

    python docs/make_tvr_examples.py [--seed 0] [--samples 0,1,2,3]
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from star_verl.prep import synthetic_tvr as syn
from star_verl.prep.trance_format import HEIGHT, SIZE_SCALE, WIDTH, is_visible

GAP, CAPTION = 6, 26


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", default="0,1,2,3")
    p.add_argument("--out", default=str(Path(__file__).parent / "images" / "tvr_synthetic_examples.png"))
    args = p.parse_args()
    ids = [int(i) for i in args.samples.split(",")]
    font = ImageFont.load_default(size=15)
    small = ImageFont.load_default(size=12)
    titles = ["initial state (center camera)", "final state: center", "final state: left", "final state: right"]
    width = 4 * WIDTH + 5 * GAP
    canvas = Image.new("RGB", (width, CAPTION + len(ids) * (HEIGHT + CAPTION + GAP) + GAP), "white")
    draw = ImageDraw.Draw(canvas)
    for col, title in enumerate(titles):
        draw.text((GAP + col * (WIDTH + GAP) + WIDTH // 2, CAPTION // 2), title, fill="black", font=font, anchor="mm")
    for row, idx in enumerate(ids):
        rec, images = syn.generate_sample(idx, args.seed)
        top = CAPTION + row * (HEIGHT + CAPTION + GAP)
        answer = ", ".join(f"{t['obj_idx']}.{t['attr']}.{t['val']}" for t in rec["transformations"])
        draw.text((GAP, top + CAPTION // 2), f"sample {idx} (seed {args.seed})    answer: {answer}", fill="black", font=font, anchor="lm")
        names = [rec["states"][0]["images"]["Camera_Center"]] + [
            rec["states"][1]["images"][c] for c in ("Camera_Center", "Camera_Left", "Camera_Right")
        ]
        for col, name in enumerate(names):
            canvas.paste(Image.open(io.BytesIO(images[name])).convert("RGB"), (GAP + col * (WIDTH + GAP), top + CAPTION))
        cam = syn.cameras_from_record(rec)["Camera_Center"]
        for i, obj in enumerate(rec["states"][0]["objects"]):
            if is_visible(obj["position"]):
                x, y = syn.grid_to_world(obj["position"])
                u, v = cam.project(np.array([[x, y, SIZE_SCALE[obj["size"]]]]))[0]
                at = (GAP + u, top + CAPTION + v)
                box = draw.textbbox(at, str(i), font=small, anchor="mm")
                draw.rectangle((box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1), fill=(0, 0, 0))
                draw.text(at, str(i), fill="white", font=small, anchor="mm")
    canvas.save(args.out, optimize=True)
    print(args.out)


if __name__ == "__main__":
    main()
