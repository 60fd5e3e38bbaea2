"""`data_prep/build_mindcube_spar.py` and `star-verl build-multiview`: MindCube + SPAR-7M training
splits (validation, RL, SFT pool) and the multi-view benchmarks (MindCube-Tiny, SPAR-Bench,
MMSI-Bench) as veRL parquet, with the leakage check between them. The converters are
`star_verl.prep.{mindcube,spar,mmsi}` over the shared library `star_verl.prep.multiview`.

`--synthetic N` builds the same splits from N generated questions instead (`star_verl.prep.synthetic_mv`,
no download), writes the validation split also as the benchmark file `bench/synthetic_mv.parquet`
(one of star_r1_mv's validation files) and, with `--with-chains`, an oracle chain of thought per
SFT-pool question as star_r1_sft's data (`OUT/../sft/{train,val}.parquet`, the teacher's writer).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from star_verl.cli import HelpFormatter
from star_verl.prep import mindcube, mmsi, spar, synthetic_mv
from star_verl.prep.build_tvr import default_data_root
from star_verl.prep.multiview import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    BadInput,
    BadInputLog,
    Catalog,
    ImageCache,
    LeakIndex,
    Sample,
    SplitRequest,
    SplitStats,
    check_leakage,
    draw_splits,
    write_split,
)
from star_verl.tasks.registry import MULTIVIEW_SOURCES, ORIGINS

LICENSES = {
    "mindcube": "MindCube (MLL-Lab/MindCube): code MIT; data license not stated; images from ArkitScenes, DL3DV-10K, WildRGB-D and self-collected photos under their own terms",
    "spar7m": "SPAR-7M (jasonzhango/SPAR-7M): annotations MIT; images from ScanNet, ScanNet++, Structured3D, Matterport3D under their non-commercial terms",
    "mindcube_tiny": "MindCube-Tiny (MLL-Lab/MindCube): as MindCube (code MIT, data license not stated, images under their sources' terms)",
    "sparbench": "SPAR-Bench (jasonzhango/SPAR-Bench): license not stated; images derive from ScanNet-family data (non-commercial terms)",
    "mmsi": "MMSI-Bench (RunsenXu/MMSI-Bench): CC BY-NC 4.0; images from ScanNet, nuScenes, Matterport3D, Ego4D, AgiBot-World, DTU, DAVIS-2017, Waymo",
    "synthetic_mv": "synthetic multi-view set (star_verl.prep.synthetic_mv): generated and rendered by star-verl, under the project's license",
}
BENCHMARKS = tuple(name for name, origin in ORIGINS.items() if origin.benchmark and origin.data_source in MULTIVIEW_SOURCES)


@dataclass
class BuildOptions:
    out: Path
    mindcube: Path | None = None
    spar: Path | None = None
    rl_samples: int = 19200
    sft_pool: int = 8200
    val_samples: int = 512
    seed: int = 0
    benchmarks: tuple[str, ...] = ()
    mindcube_tiny: Path | None = None
    sparbench: Path | None = None
    mmsi: Path | None = None
    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS
    skip_bad: bool = False
    require_references: bool = False
    overwrite: bool = False
    progress: bool = True
    synthetic: int | None = None  # N generated questions instead of --mindcube / --spar
    with_chains: bool = False  # --synthetic: oracle chains of the SFT pool for star_r1_sft
    workers: int = 1


TRAIN_FILES = {"val": "val.parquet", "train": "rl_train.parquet", "sft_pool": "sft_pool.parquet"}
SYNTHETIC_BENCH = f"bench/{synthetic_mv.ORIGIN}.parquet"  # the synthetic validation split, where star_r1_mv validates
SCENES_FILE = "synthetic_mv_scenes.jsonl"  # each synthetic question's scene, question and references (for checks and figures)


def sft_dir(out: Path) -> Path:
    """Where --with-chains writes the SFT rows: OUT/../sft (with the default --out, $STAR_VERL_DATA/sft: star_r1_sft's files)."""
    return Path(out).resolve().parent / "sft"


def build(opts: BuildOptions) -> dict[str, Any]:
    """Benchmarks first (their images and questions make the leakage index), then the training
    splits drawn without them, then a check of the written files. Returns the summary."""
    start = time.perf_counter()
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    if not opts.overwrite:
        existing = [p for p in (*TRAIN_FILES.values(), *(f"bench/{b}.parquet" for b in opts.benchmarks)) if (out / p).exists()]
        if opts.synthetic and (out / SYNTHETIC_BENCH).exists():
            existing.append(SYNTHETIC_BENCH)
        if opts.with_chains:
            existing += [str(sft_dir(out) / name) for name in ("train.parquet", "val.parquet") if (sft_dir(out) / name).exists()]
        if existing:
            raise FileExistsError(f"{out}: {existing} exist; pass --overwrite to replace them")
    bad = BadInputLog(skip_bad=opts.skip_bad)
    cache = ImageCache(min_pixels=opts.min_pixels, max_pixels=opts.max_pixels)
    leaks = LeakIndex()
    summary: dict[str, Any] = {"splits": {}, "licenses": [], "pixels": [opts.min_pixels, opts.max_pixels], "seed": opts.seed}
    used_origins: list[str] = []

    def index_bench(sample: Sample, source_shas: list[str], out_shas: list[str]) -> None:
        leaks.add(sample, source_shas, out_shas)

    def check_references(sample: Sample) -> None:
        if opts.require_references and sample.reference_loss is not None:
            raise BadInput(sample.where, f"no references ({sample.reference_loss}); --require-references makes this an error")

    def referenced(samples: Iterable[Sample]) -> Iterator[Sample]:
        for sample in samples:
            try:
                check_references(sample)
            except BadInput as exc:
                bad.report(sample.origin, exc)
                continue
            yield sample

    bench_files: list[Path] = []
    for name in opts.benchmarks:
        if name == "mindcube_tiny":
            tiny = opts.mindcube_tiny or (mindcube.find_raw(opts.mindcube, mindcube.TINY_FILE) if opts.mindcube else None)
            if tiny is None:
                raise ValueError("--benchmarks mindcube_tiny needs --mindcube-tiny FILE or --mindcube DIR")
            samples, sort, total = mindcube.tinybench_samples(Path(tiny), bad), True, None
        elif name == "sparbench":
            if opts.sparbench is None:
                raise ValueError("--benchmarks sparbench needs --sparbench DIR")
            samples, sort, total = spar.sparbench_samples(Path(opts.sparbench), bad), False, spar.sparbench_rows(Path(opts.sparbench))
        elif name == "mmsi":
            if opts.mmsi is None:
                raise ValueError("--benchmarks mmsi needs --mmsi FILE")
            samples, sort, total = mmsi.mmsi_samples(Path(opts.mmsi), bad), False, mmsi.mmsi_rows(Path(opts.mmsi))
        else:
            raise ValueError(f"unknown benchmark {name!r}; choose from {BENCHMARKS}")
        path = out / "bench" / f"{name}.parquet"
        summary["splits"][f"bench/{name}"] = write_split(
            path,
            referenced(samples),
            split="test",
            cache=cache,
            bad=bad,
            overwrite=opts.overwrite,
            sort=sort,
            on_written=index_bench,
            total=total,
            progress=opts.progress,
        )
        bench_files.append(path)
        used_origins.append(name)

    catalogs: list[Catalog] = []
    generated: list[synthetic_mv.SyntheticQuestion] = []
    if opts.synthetic is not None:
        started = time.perf_counter()
        generated = synthetic_mv.generate_questions(opts.synthetic, opts.seed, workers=opts.workers)
        summary["synthetic"] = {"questions": opts.synthetic, "seconds": round(time.perf_counter() - started, 2), "workers": opts.workers}
        catalogs.append(synthetic_mv.SyntheticCatalog(generated))
        used_origins.append(synthetic_mv.ORIGIN)
    if opts.mindcube is not None:
        catalogs.append(mindcube.MindCubeCatalog(Path(opts.mindcube), bad))
        used_origins.append("mindcube")
    if opts.spar is not None:
        spar7m = spar.spar7m_catalog(Path(opts.spar), bad, progress=opts.progress)
        catalogs.append(spar7m)
        used_origins.append("spar7m")
        summary["spar7m_read_from"] = spar7m.read_from
        summary["missing_images"] = {"spar7m": spar7m.missing_images()}
    train_files: list[Path] = []
    draw_stats: dict[str, Any] = {}
    if catalogs:
        summary["excluded"] = {c.origin: {reason: dict(tasks) for reason, tasks in c.excluded.items()} for c in catalogs}

        def accept(sample: Sample) -> str | None:
            check_references(sample)  # bad input under --require-references: replaced by the next candidate
            shas = [cache.source(ref, sample.where).sha for ref in sample.images]
            return leaks.match(sample, shas)

        sizes = (
            synthetic_mv.split_sizes(opts.synthetic)
            if opts.synthetic
            else {"val": opts.val_samples, "train": opts.rl_samples, "sft_pool": opts.sft_pool}
        )
        requests = [SplitRequest(name, sizes[name]) for name in ("val", "train", "sft_pool")]
        summary["requested"] = {req.name: req.n for req in requests}
        splits, draw_stats = draw_splits(catalogs, requests, seed=opts.seed, bad=bad, accept=accept, progress=opts.progress)
        for req in requests:
            path = out / TRAIN_FILES[req.name]
            summary["splits"][req.name] = write_split(
                path, splits[req.name], split=req.name, cache=cache, bad=bad, overwrite=opts.overwrite, progress=opts.progress
            )
            train_files.append(path)
        if opts.synthetic:
            # the validation split again as a benchmark file (split "test"): star_r1_mv validates on bench/*.parquet
            summary["splits"][SYNTHETIC_BENCH.removesuffix(".parquet")] = write_split(
                out / SYNTHETIC_BENCH, splits["val"], split="test", cache=cache, bad=bad, overwrite=opts.overwrite, progress=opts.progress
            )
            write_scenes(out / SCENES_FILE, generated, splits)
            if opts.with_chains:
                summary["chains"] = synthetic_mv.write_oracle_chains(out / TRAIN_FILES["sft_pool"], generated, sft_dir(out))
    summary["leaks_refused"] = draw_stats.get("refused", [])
    summary["shortfall"] = draw_stats.get("shortfall", {})
    summary["duplicates_skipped"] = draw_stats.get("duplicates", 0)
    if opts.synthetic:  # the validation file is the synthetic benchmark: the other training files against it and the real benchmarks
        trained = [p for p in train_files if p.name != TRAIN_FILES["val"]]
        summary["leakage_overlaps"] = check_leakage(trained, [*bench_files, out / SYNTHETIC_BENCH]) + (
            check_leakage([out / TRAIN_FILES["val"]], bench_files) if bench_files else []
        )
    else:
        summary["leakage_overlaps"] = check_leakage(train_files, bench_files) if train_files and bench_files else None
    summary["bad_input"] = bad.items
    summary["images"] = {
        "encoded": cache.encodes,
        "unique": len(cache.encoded_keys),
        "cache_hits": cache.hits,
        "encode_seconds": round(cache.seconds, 2),
    }
    summary["licenses"] = [LICENSES[o] for o in used_origins]
    summary["seconds"] = round(time.perf_counter() - start, 2)
    (out / "summary.json").write_text(json.dumps(_jsonable(summary), indent=2, ensure_ascii=False) + "\n")
    return summary


def write_scenes(path: Path, generated: Sequence[synthetic_mv.SyntheticQuestion], splits: Mapping[str, Sequence[Sample]]) -> None:
    """One JSON line per synthetic question, in index order: its split, scene, question, answer, references and oracle chain."""
    split_of = {sample.question_id: name for name, samples in splits.items() for sample in samples}
    with path.open("w", encoding="utf-8") as f:
        for q in generated:
            f.write(json.dumps({**q.record, "split": split_of.get(q.sample.question_id), "chain": q.chain}, sort_keys=True) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, SplitStats):
        return {k: (dict(v) if isinstance(v, Counter) else v) for k, v in value.__dict__.items()}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def format_summary(summary: Mapping[str, Any]) -> str:
    lines = ["", "split / origin:task                              rows  with refs  with relations  refs lost"]
    requested = summary.get("requested") or {}
    for split, st in summary["splits"].items():
        short = f" (of {requested[split]} requested: the sources hold no more)" if split in requested and st.rows < requested[split] else ""
        lines.append(f"{split}: {st.rows} rows{short}, {st.unique_images} unique images for {st.image_refs} image refs, {st.bytes / 2**20:.1f} MiB")
        for task in sorted(st.per_task):
            lines.append(f"  {task:<46} {st.per_task[task]:>6} {st.with_refs[task]:>10} {st.with_relations[task]:>15} {st.refs_lost[task]:>10}")
    lost = [(split, *row) for split, st in summary["splits"].items() for row in st.refs_lost_rows]
    if lost:
        lines.append(f"references lost: {len(lost)} rows written without the references their source states (--require-references: an error)")
        lines.extend(f"  [{split}] {task} {where}: {problem}" for split, task, where, problem in lost[:20])
        if len(lost) > 20:
            lines.append(f"  ... {len(lost) - 20} more in summary.json")
    if summary.get("synthetic"):
        syn = summary["synthetic"]
        lines.append(f"synthetic: {syn['questions']} questions generated and rendered in {syn['seconds']} s with {syn['workers']} worker(s); "
                     f"scenes in {SCENES_FILE}")  # fmt: skip
    if summary.get("spar7m_read_from"):
        lines.append(f"SPAR-7M read from the {summary['spar7m_read_from']}")
    for origin, excluded in (summary.get("excluded") or {}).items():
        for reason, tasks in sorted(excluded.items()):
            per_task = ", ".join(f"{task} {n}" for task, n in sorted(tasks.items()))
            lines.append(f"not used ({origin}): {reason}: {sum(tasks.values())} questions ({per_task})")
    for origin, sources in (summary.get("missing_images") or {}).items():
        for source, entry in sorted(sources.items()):
            lines.append(
                f"not used ({origin}): images missing from the {source} layout: {entry['questions']} questions, {entry['image_refs']} image refs"
            )
            lines.append(f"  first: {', '.join(entry['first'])}")
            lines.append(f"  lay them out with: {entry['lay_out_with']}")
    if summary.get("shortfall"):
        lines.append(f"categories short of their quota: {summary['shortfall']}")
    if summary.get("duplicates_skipped"):
        lines.append(f"duplicate questions skipped: {summary['duplicates_skipped']}")
    refused = summary.get("leaks_refused") or []
    lines.append(f"leakage: {len(refused)} training candidates refused (they share an image or a question with a benchmark)")
    lines.extend(f"  {o}:{q}: {why}" for o, q, why in refused[:20])
    overlaps = summary.get("leakage_overlaps")
    if overlaps is None:
        lines.append("leakage check of the written files: not run (needs training sources and --benchmarks in the same run)")
    else:
        lines.append(f"leakage check of the written files: {len(overlaps)} overlaps")
        lines.extend(f"  {o}" for o in overlaps[:20])
    bad = summary.get("bad_input") or []
    if bad:
        lines.append(f"bad input skipped: {len(bad)} ({dict(Counter(o for o, _, _ in bad))})")
        lines.extend(f"  [{o}] {w}: {p}" for o, w, p in bad[:50])
        if len(bad) > 50:
            lines.append(f"  ... {len(bad) - 50} more in summary.json")
    im = summary["images"]
    lines.append(
        f"images: {im['unique']} unique encoded ({im['encoded']} encodes, {im['cache_hits']} cache hits, {im['encode_seconds']} s); pixels {summary['pixels']}"
    )
    lines.append("licenses (non-commercial research use overall):")
    lines.extend(f"  {line}" for line in summary["licenses"])
    lines.append(f"done in {summary['seconds']} s")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> BuildOptions:
    p = argparse.ArgumentParser(
        prog="star-verl build-multiview",
        description="MindCube + SPAR-7M training splits and the multi-view benchmarks as veRL parquet, "
        "or (--synthetic N) the same splits from a generated multi-view set that needs no download.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--mindcube", type=Path, help="MindCube's unzipped data/ folder (raw/*.jsonl, other_all_image/) (default: none)")
    p.add_argument(
        "--spar",
        type=Path,
        help="SPAR-7M: a folder holding spar-dataset-train.parquet (the current release; images laid out under spar/<source>/images/), "
        "or the spar/ folder of the jsonl layout (<dataset>/qa_jsonl/train/<task>/<format>/*.jsonl, <dataset>/images/); see docs/data.md "
        "(default: none)",
    )
    p.add_argument(
        "--synthetic",
        type=int,
        metavar="N",
        help="instead of --mindcube/--spar: N generated questions (MindCube's settings, rendered scenes, exact per-view references; "
        f"1/{round(1 / synthetic_mv.VAL_FRACTION)} validation, 1/{round(1 / synthetic_mv.SFT_POOL_FRACTION)} SFT pool, the rest RL); the validation split "
        f"is written again as {SYNTHETIC_BENCH}, where star_r1_mv validates; see docs/synthetic_multiview.md (default: none)",
    )
    p.add_argument(
        "--with-chains",
        action="store_true",
        help="with --synthetic: an oracle three-step chain per SFT-pool question, passed through the SFT filter and written as "
        "star_r1_sft's data to OUT/../sft/{train,val}.parquet (with the default --out, $STAR_VERL_DATA/sft) (default: off)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="with --synthetic: processes rendering the scenes; the output does not depend on it (default: %(default)s)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: $STAR_VERL_DATA/multiview, i.e. ~/data/star_verl/multiview when STAR_VERL_DATA is unset: where star_r1_mv reads)",
    )
    p.add_argument("--rl-samples", type=int, default=19200, help="RL set size, uniform across categories (default: %(default)s)")
    p.add_argument(
        "--sft-pool", type=int, default=8200, help="pool for the SFT cold start's teacher (default: %(default)s, ~2x the 4.1k kept after filtering)"
    )
    p.add_argument("--val-samples", type=int, default=512, help="validation split size (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split drawing and of --synthetic's scenes (default: %(default)s)")
    p.add_argument("--benchmarks", default="", help=f"comma-separated, from {','.join(BENCHMARKS)} (default: none)")
    p.add_argument("--mindcube-tiny", type=Path, help="MindCube_tinybench.jsonl (default: raw/ under --mindcube)")
    p.add_argument("--sparbench", type=Path, help="SPAR-Bench folder with the 4 parquet shards (default: none)")
    p.add_argument("--mmsi", type=Path, help="MMSI_Bench.parquet (default: none)")
    p.add_argument("--min-pixels", type=int, default=DEFAULT_MIN_PIXELS, help="smallest per-image pixel count (default: %(default)s)")
    p.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help="per-image pixel budget (default: %(default)s, star_r1_mv's data.star.max_pixels)",
    )
    p.add_argument("--skip-bad", action="store_true", help="count and list bad input instead of stopping at the first (default: off)")
    p.add_argument(
        "--require-references",
        action="store_true",
        help="a row whose source states references that cannot be read (MindCube meta_info that fits no layout, "
        "a SPAR marker with no object name) is bad input instead of a row without references (default: off)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace the output files that exist (default: off: refuse)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (default: off)")
    ns = p.parse_args(argv)
    benches = tuple(b for b in (x.strip() for x in ns.benchmarks.split(",")) if b)
    unknown = [b for b in benches if b not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark(s) {unknown}; choose from {BENCHMARKS}")
    if ns.synthetic is not None:
        if ns.mindcube is not None or ns.spar is not None:
            p.error("--synthetic replaces --mindcube and --spar: give one or the other")
        if ns.synthetic < 3:
            p.error(f"--synthetic needs at least 3 questions (one each for validation, RL and the SFT pool), got {ns.synthetic}")
    elif ns.with_chains:
        p.error("--with-chains needs --synthetic N (the teacher's chains of real data: star-verl generate-cot)")
    if ns.workers < 1:
        p.error(f"--workers must be at least 1, got {ns.workers}")
    if ns.mindcube is None and ns.spar is None and ns.synthetic is None and not benches:
        p.error("nothing to do: give --mindcube and/or --spar, or --synthetic N, and/or --benchmarks")
    return BuildOptions(
        out=ns.out if ns.out is not None else default_data_root() / "multiview",
        mindcube=ns.mindcube,
        spar=ns.spar,
        rl_samples=ns.rl_samples,
        sft_pool=ns.sft_pool,
        val_samples=ns.val_samples,
        seed=ns.seed,
        benchmarks=benches,
        mindcube_tiny=ns.mindcube_tiny,
        sparbench=ns.sparbench,
        mmsi=ns.mmsi,
        min_pixels=ns.min_pixels,
        max_pixels=ns.max_pixels,
        skip_bad=ns.skip_bad,
        require_references=ns.require_references,
        overwrite=ns.overwrite,
        progress=not ns.no_progress,
        synthetic=ns.synthetic,
        with_chains=ns.with_chains,
        workers=ns.workers,
    )


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    try:
        summary = build(opts)
    except (BadInput, FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_summary(summary))
    if summary.get("chains"):
        chains = summary["chains"]
        print(
            f"oracle chains (synthetic, labeled origin {synthetic_mv.ORIGIN}): {chains['train']} train, {chains['val']} val rows in {chains['out']}"
        )
    overlaps = summary.get("leakage_overlaps")
    return 2 if overlaps else 0
