"""Small multi-view sources written in each source's exact on-disk format (field names and record
shapes of shared/reference/datasets.md), with generated images: MindCube (data/raw/*.jsonl +
other_all_image/), SPAR-7M (the jsonl layout spar/<dataset>/qa_jsonl/train/<task>/<format>/*.jsonl +
images/, or the current release's spar-dataset-train.parquet with images laid out as its
prepare_*_layout.py scripts do),
SPAR-Bench (4 parquet shards) and MMSI-Bench (MMSI_Bench.parquet). Used by the converter's tests,
its benchmark and the RL pipeline's tests.

Every generated image has unique content (`tests.images.gradient`), so the leakage
check's content hashes only collide where a fixture shares an image on purpose.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

from tests.images import gradient

NOUNS = (
    "sofa", "lamp", "table", "chair", "plant", "door", "window", "shelf", "bin", "clock", "cabinet", "desk", "tv", "bed", "mirror",
    "sink", "stove", "rug", "fan", "vase", "piano", "guitar", "bench", "printer", "monitor", "kettle", "basket", "pillow", "towel", "box",
)  # fmt: skip


def _save(path: Path, size: tuple[int, int], seed_text: str | None = None) -> None:
    """An image at `path`, its content seeded by `seed_text` (default: the path itself)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    seed_text = seed_text if seed_text is not None else str(path.name) + str(path.parent)
    path.write_bytes(gradient(seed_text, size, "PNG" if path.suffix == ".png" else "JPEG"))


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


# --------------------------------------------------------------------------------------------
# MindCube


def _options(rng: random.Random, names: list[str]) -> tuple[str, str]:
    names = rng.sample(NOUNS, len(names))  # each question its own options (few exact repeats)
    letters = "ABCD"[: len(names)]
    gt = rng.choice(letters)
    return " ".join(f"{letter}. {name.capitalize()}" for letter, name in zip(letters, names, strict=True)), gt


def _mindcube_group(
    setting: str, g: int, n_questions: int, rng: random.Random, data: Path, size: tuple[int, int], prefix: str
) -> list[dict[str, Any]]:
    names = rng.sample(NOUNS, 5)
    records = []
    if setting == "among":
        folder = f"other_all_image/among/{names[0]}_{prefix}{g:03d}"
        files = [f"{folder}/{v}_{k:03d}.jpg" for v, k in (("front", 7), ("left", 84), ("back", 157), ("right", 246))]
        meta = [[f"{n}" for n in names], [None, None, "face", None, None]]
        for j in range(n_questions):
            images = files if j % 2 == 0 else files[:2]
            opts, gt = _options(rng, names[1:5])
            view = "four images (image 1, 2, 3, and 4)" if len(images) == 4 else "two images (image 1 and 2)"
            side = ("right", "left", "back")[j % 3]
            question = f"Based on these {view} showing the {names[0]} from different viewpoints, from the viewpoint presented in image {1 + j % len(images)}, what is to the {side} of the {names[0]}? {opts}"
            records.append(
                {
                    "id": f"among_group{prefix}{g:03d}_q{j}_1_1",
                    "category": ["perpendicular", "P-P", "meanwhile", "self"],
                    "type": "0_frame",
                    "meta_info": meta,
                    "question": question,
                    "images": images,
                    "gt_answer": gt,
                }
            )
    elif setting == "around":
        digest = hashlib.sha256(f"{prefix}{g}".encode()).hexdigest()[:16]
        folder = f"other_all_image/around/{digest}"
        files = [f"{folder}/{k}_frame_{80 + 10 * k:05d}.png" for k in range(1, 5)]
        meta = [[4, "None", "Heavey", "Little"], [2, names[:2], ["None", "None"], []]]
        for j in range(n_questions):
            images = files[:2] if j % 2 == 0 else [files[1], files[0], files[2]]
            opts, gt = _options(rng, names[:4])
            question = f"You are standing in front of the {names[0]} and the {names[1]}. After walking around to view {len(images)}, which object is closest to you? {opts}"
            records.append(
                {
                    "id": f"around_{digest}_q{j}_2",
                    "category": ["parallel", "around"],
                    "type": "2",
                    "meta_info": meta,
                    "question": question,
                    "images": images,
                    "gt_answer": gt,
                }
            )
    else:
        folder = f"other_all_image/rotation/arkitscenes_{prefix}{g:05d}"
        kinds = {"three_view": 3, "four_view": 4, "two_view_clockwise": 2}
        kind = list(kinds)[(g // 3) % 3]
        files = [f"{folder}/view_{k}_{10 + k}.jpg" for k in range(1, kinds[kind] + 1)]
        for j in range(n_questions):
            opts, gt = _options(rng, names[: kinds[kind]] if kinds[kind] > 2 else names[:3])
            question = f"These {len(files)} images (image 1 to {len(files)}) show the same scene from different viewpoints, turning the camera 90 degrees to the right each time. If you are standing at the viewpoint presented in image 1, what is to your right? {opts}"
            records.append(
                {
                    "id": f"rotation_group{prefix}{g:03d}_q{j}_3",
                    "category": ["perpendicular", "PP", "rotation", "self"],
                    "type": kind,
                    "meta_info": names[: kinds[kind]],
                    "question": question,
                    "images": files,
                    "gt_answer": gt,
                }
            )
    for path in files:
        _save(data / path, size)
    return records


def write_mindcube_fixture(
    root: str | Path,
    n: int = 60,
    *,
    n_groups: int | None = None,
    n_tiny: int = 12,
    leak: int = 0,
    image_size: tuple[int, int] = (96, 72),
    seed: int = 0,
) -> Path:
    """MindCube's unzipped `data/` under `root`: `raw/MindCube_train.jsonl` with about `n` questions
    (among/around/rotation round robin) over `n_groups` image groups (default n // 5),
    `raw/MindCube_tinybench.jsonl` with `n_tiny` questions on other groups, and the images.
    `leak`: that many tinybench records also copied verbatim into the training file. Returns `data/`."""
    data = Path(root) / "data"
    rng = random.Random(seed)
    n_groups = n_groups or max(3, n // 5)
    settings = ("among", "around", "rotation")
    train: list[dict[str, Any]] = []
    for g in range(n_groups):
        per = n // n_groups + (1 if g < n % n_groups else 0)
        train += _mindcube_group(settings[g % 3], g, per, rng, data, image_size, "t")
    tiny: list[dict[str, Any]] = []
    for g in range(max(3, n_tiny // 4)):
        tiny += _mindcube_group(settings[g % 3], g, 4, rng, data, image_size, "b")
    tiny = tiny[:n_tiny]
    train += tiny[:leak]
    _write_jsonl(data / "raw" / "MindCube_train.jsonl", train)
    _write_jsonl(data / "raw" / "MindCube_tinybench.jsonl", tiny)
    return data


# --------------------------------------------------------------------------------------------
# SPAR-7M

_OC_OPTIONS = "\nA. left, above, front\nB. , below, behind\nC. right, , front\nD. right, below, front"
_OO_OPTIONS = (
    "\nA. left, , closer, front, front\nB. left, above, farther, front, \nC. right, below, closer, behind, front\nD. , above, farther, front, behind"
)
_INSTR = "\nYour answer can only include one of options A, B, C or D."


def spar_record(task: str, fmt: str, rid: str, images: list[str], rng: random.Random) -> dict[str, Any]:
    """One SPAR-7M record of a multi-view task in the README's jsonl form (markers as geometry)."""
    a, b, c, d = rng.sample(NOUNS, 4)

    def box() -> list[list[int]]:
        x, y = rng.randint(100, 500), rng.randint(100, 500)
        return [[x, y, x + rng.randint(150, 400), y + rng.randint(150, 400)]]

    def point() -> list[list[int]]:
        return [[rng.randint(100, 900), rng.randint(100, 900)]]

    extra: dict[str, Any] = {}
    letter = rng.choice("ABCD")
    if task == "obj_spatial_relation_oc_mv":
        q = f"How is object {a} (red bbox) situated with respect to the observer's main viewpoint? Calculate or judge based on the 3D center points of these objects. The observer's perspective is captured by setting the first image as the primary view.{_OC_OPTIONS}{_INSTR}"
        extra = {"red_bbox": box(), "bbox_img_idx": [[rng.randrange(len(images))]]}
    elif task == "obj_spatial_relation_oo_mv":
        q = f"What is the spatial position of the {a} (red bbox) relative to the {b} (blue bbox) in the two images, from the observer's perspective?{_OO_OPTIONS}{_INSTR}"
        extra = {"red_bbox": box(), "blue_bbox": box(), "bbox_img_idx": [[0, len(images) - 1]]}
    elif task == "spatial_imagination_oc_mv":
        q = f"Describe where {a} (red bbox) is located from the observer's point of view after the observer moves to the 3D center of {b} (green bbox) and faces {c} (blue bbox). For multiple-choice questions, consider only the state after the observer has moved.{_OC_OPTIONS}{_INSTR}"
        extra = {"red_bbox": box(), "green_bbox": box(), "blue_bbox": box(), "bbox_img_idx": [[0, 1, 2]]}
    elif task == "spatial_imagination_oo_mv":
        q = f"After the observer moves to {b} (green bbox) and faces {c} (blue bbox), where is {a} (red bbox) relative to {d} (yellow bbox)?{_OO_OPTIONS}{_INSTR}"
        extra = {"red_bbox": box(), "green_bbox": box(), "blue_bbox": box(), "yellow_bbox": box(), "bbox_img_idx": [[0, 1, 2, 3]]}
    elif task == "depth_prediction_oc_mv":
        q = f"If the {a} (red point) is 2.5 meters deep, how deep is the {b} (blue point)?  Calculate or judge based on the 3D center points of these objects."
        extra = {"red_point": point(), "blue_point": point(), "point_img_idx": [[0, 1]]}
    elif task == "depth_prediction_oo_mv":
        q = f"Assume the depth of {a} (red point) is 2.0. How much deeper or shallower is {b} (green point) relative to {c} (blue point), measured in meters?"
        extra = {"red_point": point(), "blue_point": point(), "green_point": point(), "point_img_idx": [[0, 2, 1]]}
    elif task == "distance_prediction_oc_mv":
        q = f"How far is the {a} (red point) from the observer of the first image, in meters?"
        extra = {"red_point": point(), "point_img_idx": [[1]]}
    elif task == "distance_prediction_oo_mv":
        q = f"What is the distance between the {a} (red point) and the {b} (blue point), in meters?"
        extra = {"red_point": point(), "blue_point": point(), "point_img_idx": [[0, 1]]}
    elif task == "distance_infer_center_oo_mv":
        q = f"Which is closer to the {a} (red point): the {b} (green point) or the {c} (blue point)?\nA. {b}\nB. {c}\nYour answer can only include one of options A or B."
        extra = {"red_point": point(), "green_point": point(), "blue_point": point(), "point_img_idx": [[0, 1, 2]]}
        letter = rng.choice("AB")
    elif task == "position_matching":
        q = f"Based on the red bbox of {a} in the first image, locate its bounding box in the second image.\nA. [0, 0, 556, 720]\nB. [529, 1, 1000, 632]\nC. [0, 490, 1000, 999]\nD. [0, 29, 324, 720]{_INSTR}"
        extra = {"red_bbox": box()}
    elif task == "camera_motion_infer":
        q = f"Estimate where the second image's observer would appear when projected onto the first image's coordinate space.\nA. Image Coor:(569, 18), Depth:1.1 meters\nB. Image Coor:(100, 300), Depth:2.0 meters\nC. Image Coor:(900, 500), Depth:0.5 meters\nD. Image Coor:(10, 10), Depth:3.0 meters{_INSTR}"
    elif task == "view_change_infer":
        q = "Describe the changes in orientation needed to transition from the first image to the second.\nProvide the camera movement and rotation in the following format:\nmove_<right_or_left>:<meters>,move_<down_or_up>:<meters>,move_<forward_or_back>:<meters>,rotate_<down_or_up>:<degrees>,rotate_<right_or_left>:<degrees>"
    else:
        raise ValueError(f"no fixture template for {task}")
    if fmt == "select":
        answer = letter
    elif task == "view_change_infer":
        answer = (
            f"move_right:{rng.randint(0, 30) / 10},move_down:0,move_backward:{rng.randint(0, 9) / 10},rotate_up:15,rotate_left:{rng.randint(0, 90)}"
        )
    else:
        answer = f"{rng.randint(5, 60) / 10}"
    return {"id": rid, "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": answer}], "image": images, "type": task, **extra}


# (task, format, number of images)
SPAR_FIXTURE_TASKS = (
    ("obj_spatial_relation_oc_mv", "select", 3), ("obj_spatial_relation_oo_mv", "select", 2), ("spatial_imagination_oc_mv", "select", 3),
    ("spatial_imagination_oo_mv", "select", 4), ("depth_prediction_oc_mv", "fill", 2), ("depth_prediction_oo_mv", "fill", 3),
    ("distance_prediction_oc_mv", "fill", 2), ("distance_prediction_oo_mv", "fill", 2), ("distance_infer_center_oo_mv", "select", 3),
    ("position_matching", "select", 2), ("camera_motion_infer", "select", 2), ("view_change_infer", "fill", 2),
)  # fmt: skip


SPAR_RELEASE_SCHEMA_FIELDS = (
    ("id", "string"), ("qa_type", "string"), ("qa_format", "string"), ("split", "string"), ("base_dataset", "string"),
    ("scene_id", "string"), ("image", "list<string>"), ("question", "string"), ("answer", "string"),
    *((f"{c}_bbox", "boxes") for c in ("red", "green", "blue", "yellow")), ("bbox_img_idx", "indices"),
    *((f"{c}_point", "boxes") for c in ("red", "green", "blue")), ("point_img_idx", "indices"),
)  # fmt: skip


def _spar_release_schema():
    import pyarrow as pa

    types = {
        "string": pa.string(), "list<string>": pa.list_(pa.string()), "boxes": pa.list_(pa.list_(pa.float64())),
        "indices": pa.list_(pa.list_(pa.int64())),
    }  # fmt: skip
    return pa.schema([(name, types[kind]) for name, kind in SPAR_RELEASE_SCHEMA_FIELDS])


def spar_release_row(dataset: str, task: str, fmt: str, record: dict[str, Any]) -> dict[str, Any]:
    """A jsonl record as a row of the current release's `spar-dataset-train.parquet`: paths under
    `spar/<dataset>/images/`, one `<image>` per image in the question, the same marker geometry."""
    images = record.get("image") or []
    turns = record.get("conversations") or [{"value": "How many chairs are in the room?"}, {"value": "2"}]
    question = turns[0]["value"]
    if "<image>" not in question:
        question = "<image>\n" * len(images) + question
    row = {name: record.get(name) for name, kind in SPAR_RELEASE_SCHEMA_FIELDS if kind in ("boxes", "indices")}
    return {
        **row, "id": str(record["id"]), "qa_type": task, "qa_format": fmt, "split": "train", "base_dataset": dataset,
        "scene_id": images[0].split("/")[0] if images else None, "image": [f"spar/{dataset}/images/{p}" for p in images],
        "question": question, "answer": str(turns[1]["value"]),
    }  # fmt: skip


def write_spar_release(path: str | Path, rows: list[dict[str, Any]], *, row_group_size: int | None = None) -> Path:
    """`rows` (release rows) as `spar-dataset-train.parquet` at `path`, in the release's column layout."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=_spar_release_schema()), path, row_group_size=row_group_size)
    return path


def write_spar_fixture(
    root: str | Path,
    n: int = 4,
    *,
    n_scenes: int = 3,
    image_size: tuple[int, int] = (320, 240),
    seed: int = 0,
    dataset: str = "scannet",
    tasks: tuple = SPAR_FIXTURE_TASKS,
    layout: str = "jsonl",
    lay_out_images: bool = True,
    row_group_size: int | None = None,
) -> Path:
    """SPAR-7M under `root`: `n` records per multi-view task of `tasks` (in the task's `select`/`fill`
    folder), plus questions the converter must leave alone (a `sentence` answer, a video task), over
    `n_scenes` scenes of 5 images each. The same records and images for every `layout`:

    - "jsonl": `root/spar/<dataset>/qa_jsonl/train/<task>/<format>/<format>_<n>.jsonl` and
      `root/spar/<dataset>/images/<scene>/image_color/`; returns `root/spar`;
    - "release": the current release, `root/spar-dataset-train.parquet` (rows in the jsonl layout's
      reading order), with the images laid out as the release's `prepare_scannet_layout.py` does
      (`spar/<dataset>/images/<scene>/image_color` a link to the source's `scans/<scene>/image/color`,
      an empty `video_color/` and `video_idx.txt`), unless `lay_out_images` is False; returns `root`."""
    root = Path(root)
    rng = random.Random(seed)
    scenes = [f"scene{s:04d}_00" for s in range(n_scenes)]
    files: list[tuple[str, str, str, list[dict[str, Any]]]] = []  # (task, format, file name, records)
    for task, fmt, n_images in tasks:
        records = []
        for i in range(n):
            scene = scenes[(i + len(task)) % n_scenes]
            frames = rng.sample(range(5), n_images)
            images = [f"{scene}/image_color/{100 * k + 43}.jpg" for k in frames]
            records.append(spar_record(task, fmt, f"{scene}_{i}", images, rng))
        files.append((task, fmt, f"{fmt}_{n}.jsonl", records))
    sentence = spar_record("view_change_infer", "fill", "x_0", [f"{scenes[0]}/image_color/43.jpg", f"{scenes[0]}/image_color/143.jpg"], rng)
    sentence["conversations"][1]["value"] = "The camera moves right by 1.6 meters."
    files.append(("view_change_infer", "sentence", "sentence_1.jsonl", [sentence]))
    files.append(("obj_count", "fill", "fill_1.jsonl", [{"id": "x", "type": "obj_count"}]))
    frames = [(scene, f"{100 * k + 43}.jpg") for scene in scenes for k in range(5)]

    def seed_of(scene: str, frame: str) -> str:  # the same content in every layout
        return f"{dataset}/images/{scene}/image_color/{frame}"

    if layout == "jsonl":
        base = root / "spar" / dataset
        for scene, frame in frames:
            _save(base / "images" / scene / "image_color" / frame, image_size, seed_of(scene, frame))
        for task, fmt, name, records in files:
            _write_jsonl(base / "qa_jsonl" / "train" / task / fmt / name, records)
        return root / "spar"
    if layout != "release":
        raise ValueError(f"layout {layout!r}: jsonl or release")
    if lay_out_images:
        source = root / f"{dataset}_download" / "scans"  # the source dataset as its owners distribute it
        for scene, frame in frames:
            _save(source / scene / "image" / "color" / frame, image_size, seed_of(scene, frame))
        for scene in scenes:
            out = root / "spar" / dataset / "images" / scene
            out.mkdir(parents=True, exist_ok=True)
            (out / "image_color").symlink_to((source / scene / "image" / "color").resolve(), target_is_directory=True)
            (out / "video_color").mkdir()
            (out / "video_idx.txt").write_text("")
    # the jsonl layout's reading order: task folders, then format folders, sorted
    ordered = sorted(files, key=lambda f: (f[0], f[1], f[2]))
    rows = [spar_release_row(dataset, task, fmt, r) for task, fmt, _, records in ordered for r in records]
    write_spar_release(root / "spar-dataset-train.parquet", rows, row_group_size=row_group_size)
    return root


# --------------------------------------------------------------------------------------------
# SPAR-Bench and MMSI-Bench


def _sparbench_row(i: int, rng: random.Random, size: tuple[int, int]) -> dict[str, Any]:
    kinds = [
        ("obj_spatial_relation_oc_mv", "select", 3),
        ("depth_prediction_oc_mv", "fill", 3),
        ("view_change_infer", "fill", 2),
        ("position_matching", "select", 2),
    ]
    task, fmt, n_images = kinds[i % len(kinds)]
    record = spar_record(task, fmt, str(i), ["x"] * n_images, rng)
    question, answer = record["conversations"][0]["value"], record["conversations"][1]["value"]
    question = question.replace(_INSTR, "\nPick the right response from the available choices." + _INSTR)  # the benchmark's own wording
    if task == "obj_spatial_relation_oc_mv":
        question = question.replace("(red bbox)", "(bbox)")  # SPAR-Bench names the single box without a color
    images = [{"bytes": gradient(f"sparbench/{i}/{k}", size), "path": f"{6400 + i}_scene{i:04d}_00_{k}.jpg"} for k in range(n_images)]
    return {
        "id": i,
        "image": images,
        "question": question,
        "answer": answer,
        "task": task,
        "img_type": "multi-view",
        "format_type": fmt,
        "source": "scannet",
    }


def write_sparbench_fixture(root: str | Path, n: int = 8, *, image_size: tuple[int, int] = (160, 120), seed: int = 0) -> Path:
    """SPAR-Bench's `data/test-0000{0..3}-of-00004.parquet` under `root` with `n` questions
    (markers already drawn in the real data; here plain images). Returns the folder of the shards."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    folder = Path(root) / "data"
    folder.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([
        ("id", pa.int64()), ("image", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))), ("question", pa.string()),
        ("answer", pa.string()), ("task", pa.string()), ("img_type", pa.string()), ("format_type", pa.string()), ("source", pa.string()),
    ])  # fmt: skip
    rows = [_sparbench_row(i, rng, image_size) for i in range(n)]
    for shard in range(4):
        part = rows[shard::4]
        pq.write_table(pa.Table.from_pylist(part, schema=schema), folder / f"test-{shard:05d}-of-00004.parquet")
    return folder


MMSI_TYPES = (
    "Positional Relationship (Cam.\u2013Obj.)", "Positional Relationship (Obj.\u2013Obj.)", "Motion (Cam.)", "Attribute (Meas.)", "MSR",
    "Positional Relationship (Cam.-Cam.)",  # a legacy hyphen copy
)  # fmt: skip


def write_mmsi_fixture(path: str | Path, n: int = 6, *, image_size: tuple[int, int] = (160, 120), seed: int = 0) -> Path:
    """`MMSI_Bench.parquet` with `n` questions: raw JPEG bytes, en-dash categories, inline options."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        a, b, c, d = rng.sample(NOUNS, 4)
        rows.append({
            "id": i, "images": [gradient(f"mmsi/{i}/{k}", image_size) for k in range(2 + i % 3)],
            "question_type": MMSI_TYPES[i % len(MMSI_TYPES)],
            "question": f"Where is the {a} relative to the {b} when seen from the second camera?\nOptions: A: left of it, B: right of it, C: in front of it, D: behind it",
            "answer": rng.choice("ABCD"), "thought": f"The {a} appears next to the {c} and the {d}.",
        })  # fmt: skip
    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("images", pa.list_(pa.binary())),
            ("question_type", pa.string()),
            ("question", pa.string()),
            ("answer", pa.string()),
            ("thought", pa.string()),
        ]
    )
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


# --------------------------------------------------------------------------------------------
# responses for round trips


def response_for(gt: dict[str, Any], *, right: bool) -> str:
    """A well-formed three-step response stating each image's relational references under its "Image k"
    heading, with the right or a wrong final answer."""
    refs = gt.get("references", [])
    views = refs if isinstance(refs, dict) else {"1": refs}  # the flat form is read from all of Step 1
    lines = [
        f"Image {k}: " + " ".join(f"[{r[0]}, {r[1]}, {r[2]}]" for r in triplets if r[1] is not None and r[2] is not None)
        for k, triplets in views.items()
    ]
    think = "Step 1:\n" + "\n".join(lines) + "\nStep 2: the views overlap.\nStep 3: so the answer follows."
    if gt["type"] == "choice":
        answer = gt["answer"] if right else next(o for o in gt["options"] if o != gt["answer"])
    elif gt["type"] == "numeric":
        answer = str(gt["answer"]) if right else str(gt["answer"] * 3 + 10)
    else:
        answer = gt["answer"] if right else "move_left:9,move_up:9,move_forward:9,rotate_down:90,rotate_right:170"
    return f"<think>{think}</think><answer>{answer}</answer>"
