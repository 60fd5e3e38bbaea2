"""The benchmarks' own per-sample scorers, reproduced with their quirks so numbers compare with published ones.

Each function below re-implements, from reading the upstream source, what the benchmark's official
evaluation does with one model output. Nothing here is "fixed": where the official code does
something surprising, so does this module, and the comment says so. The `strict` protocol
(`star_verl.eval.scoring`) is where the model's meaning is scored with the reward's parsers.

`official_score` is the one entry point for a multi-view sample: `star-verl eval score` (protocol
`official`) and `star_verl.rewards.compute_score` (the `official` reward key, logged at every
validation of a run) both call it, so the numbers logged during training and the numbers of `eval
score` come from the same code. TVR's official metrics are `star_verl.tasks.tvr.tvr_sample_metrics`.
The benchmarks' aggregations (MindCube's overall without translation, SPAR-Bench's task and level
means) are in `star_verl.eval.scoring`.

Sources (read for this module; no code copied):
- MindCube: github.com/mll-lab-nu/MindCube @6d8fd9a (HEAD), `src/evaluation/core/extractors.py`
  (`extract_answer`, `get_setting_from_id`) and `src/evaluation/evaluator.py` (correctness and the
  overall accuracy that excludes the translation setting).
- SPAR-Bench: github.com/EvolvingLMMs-Lab/lmms-eval, `lmms_eval/tasks/sparbench/utils.py`
  (`exact_match`, `process_na`, `mean_relative_accuracy`, `compute_vci_metric`,
  `sparbench_aggregate_results`).
- MMSI-Bench: github.com/InternRobotics/MMSI-Bench `README.md` ("Answer Extraction",
  `extract_single_choice_with_word_boundary`), which lmms-eval's `mmsi_bench/utils.py` also follows;
  compared with the VLMEvalKit class `MMSIBenchDataset.evaluate` (see `mmsi_correct`).

Every function takes any model output (None, bytes, odd text) and never raises on it. Pure Python
(no numpy): `compute_score` calls it for every sample.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from star_verl.tasks import registry
from star_verl.tasks.multiview import MultiViewGroundTruth
from star_verl.tasks.numeric import mean_relative_accuracy  # SPAR-Bench's MRA, thresholds as np.linspace builds them
from star_verl.tasks.tags import as_text, last_answer

# --------------------------------------------------------------------------------------------------
# What the harness hands to the scorer
# --------------------------------------------------------------------------------------------------
_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)


def harness_text(benchmark_family: str, response: object) -> str:
    """The text a benchmark's own harness would give its scorer, for a model that answers in
    STAR-R1's `<think>...</think><answer>...</answer>` format.

    - MindCube: the whole response. MindCube's own prompts ask for `<think>...</think><answer>A.
      ...</answer>` and its extractor runs over the full text (reasoning included).
    - SPAR-Bench and MMSI-Bench ask for a bare letter or number. lmms-eval (>= 0.7) drops `<think>`
      blocks before scoring by default; a STAR-R1-format model puts its answer in
      `<answer>` tags, so the scorer gets the content of the last `<answer>...</answer>` block when
      there is one, else the response without its `<think>` blocks; surrounding white space removed
      (`<answer>\nB\n</answer>` is "B"), as reasoning-tag strippers do.
    """
    text = as_text(response)
    if benchmark_family == "mindcube":
        return text
    answer = last_answer(text)
    if answer is not None:
        return answer.strip()
    return _THINK_BLOCK.sub("", text).strip()


# --------------------------------------------------------------------------------------------------
# MindCube (src/evaluation)
# --------------------------------------------------------------------------------------------------
MINDCUBE_OTHER = "other"  # the setting of an id that names none
MINDCUBE_REPORT_ORDER = ("rotation", "around", "among", "translation", MINDCUBE_OTHER)  # the evaluator's output order
MINDCUBE_EXCLUDED_FROM_OVERALL = ("translation",)

# The extractor's ordered pattern list after the `<Answer>` section (case-sensitive, last match wins).
_MC_FIRST = re.compile(r"([A-E])\.")
_MC_ANSWER_SECTION = re.compile(r"<Answer>(.*?)(?:<|$)", re.DOTALL)  # capital A: `<answer>` does not match
_MC_SECTION_PATTERNS = tuple(
    re.compile(p)
    for p in (r"[Mm]y answer is ([A-E])", r"[Mm]y answer is ([A-E])\.", r"[Tt]he answer is ([A-E])", r"(?:Answer: )?([A-E])\.", r"\b([A-E])\b")
)
_MC_PATTERNS = tuple(
    re.compile(p)
    for p in (
        r"(?:Answer: )?([A-E])\. [A-Za-z0-9 \-\(\)'\",]+(?=(?:\n|$|\.|\"))",
        r"(?:Answer: )?([A-E])\. [A-Za-z0-9 \-\(\)'\"]+",
        r"(?:^|\n)(?:Answer: )?([A-E])(?:\.|$|\s)",
        r"[\*\"]([A-E])[\*\"]",
        r"\bAnswer:?\s*([A-E])\b",
        r"[Mm]y answer is ([A-E])",
        r"[Mm]y answer is ([A-E])\.",
        r"answer is ([A-E])",
    )
)
_MC_LINE_FULL = re.compile(r"([A-E])\. [A-Za-z0-9 \-\(\)'\",]+")
_MC_LINE_BARE = re.compile(r"\b([A-E])\b")


def _last_group(pattern: re.Pattern[str], text: str) -> str | None:
    last = None
    for match in pattern.finditer(text):
        last = match.group(1)
    return last


def mindcube_extract_answer(response: object) -> str | None:
    """MindCube's `extract_answer` (HEAD 6d8fd9a): the first rule that matches wins; within rules 1-3
    the LAST match, within rule 4 the first match of the last line that has one. X is a capital A-E.

    1. `X.` anywhere in the text, reasoning included (quirk kept: "... option B. Final:
       <answer>C</answer>" gives B);
    2. inside a `<Answer>` section (capital A: STAR-R1's `<answer>` is not one): "my answer is X",
       "the answer is X", "X.", a standalone X;
    3. in the whole text, in this order: "X. description", `X` at the start of a line followed by
       white space, a period or the end ("D or B" gives D), `*X*` or `"X"`, "Answer: X", "my
       answer is X", "answer is X";
    4. per line: the last line with "X. description"; else, from the bottom, the last line with a
       standalone X, and on it the FIRST one ("I think D or B" and "<answer>D or B</answer>" give D).

    The initial commit of the file had one more rule 3 pattern, an X followed by white space, a
    period or the end anywhere (which read "I think D or B" as B); HEAD removed it.
    """
    text = as_text(response)
    if not text:
        return None
    found = _last_group(_MC_FIRST, text)
    if found:
        return found
    section = _MC_ANSWER_SECTION.search(text)
    if section:
        for pattern in _MC_SECTION_PATTERNS:
            found = _last_group(pattern, section.group(1))
            if found:
                return found
    for pattern in _MC_PATTERNS:
        found = _last_group(pattern, text)
        if found:
            return found
    lines = text.split("\n")
    line_hits = [m.group(1) for m in (_MC_LINE_FULL.search(line) for line in lines) if m]
    if line_hits:
        return line_hits[-1]
    for line in reversed(lines):
        match = _MC_LINE_BARE.search(line)
        if match:
            return match.group(1)
    return None


def mindcube_setting(item_id: str) -> str:
    """MindCube's `get_setting_from_id`: the first setting that is a substring of the id
    (`star_verl.tasks.registry.mindcube_setting`), "other" when it names none."""
    return registry.mindcube_setting(item_id) or MINDCUBE_OTHER


def mindcube_correct(response: object, gt_answer: str) -> bool:
    """Correct iff the extracted letter equals `gt_answer` exactly (no case folding, no stripping)."""
    extracted = mindcube_extract_answer(response)
    return bool(extracted) and extracted == gt_answer


# --------------------------------------------------------------------------------------------------
# SPAR-Bench (lmms-eval tasks/sparbench/utils.py)
# --------------------------------------------------------------------------------------------------
# The task lists and levels are the registry's (`star_verl.tasks.registry.SPARBENCH_*`).
# The metric name lmms-eval gives each task kind; its Low/Middle/High grouping strips the last
# "_"-separated piece of "<task>_<metric>" to find the task, which fails for "vci_metric" (see below).
SPAR_METRIC_NAME = {"mca": "accuracy", "na": "MRA:.5:.95:.05", "vci": "vci_metric"}
_SPAR_KIND = {"choice": "mca", "numeric": "na", "view_change": "vci"}  # lmms-eval's kind of each ground-truth type
_SPAR_NUMBER = re.compile(r"(?<!\^)\d+\.\d+|(?<!\^)\d+")


def spar_task_kind(task: str, gt_type: str | None = None) -> str:
    """'mca', 'na' or 'vci'. Tasks outside SPAR-Bench's 20 (SPAR-7M validation) are not in
    lmms-eval's lists: they get the scorer of their ground-truth type instead of an error."""
    return _SPAR_KIND.get(registry.spar_answer_type(task) or gt_type or "", "mca")


def spar_exact_match(pred: object, target: str) -> float:
    """lmms-eval's MCA `exact_match` on lower-cased strings: equal, or `pred in target`, or
    `pred[0] == target`. Quirks kept: an empty prediction is right (`"" in target`); so is any
    prediction whose first character is the answer letter ("b, because ..." for "B")."""
    p, t = as_text(pred).lower(), str(target).lower()
    if p == t or p in t or p[0] == t:
        return 1.0
    return 0.0


def spar_na_prediction(pred: object, task: str) -> float | None:
    """lmms-eval's `process_na`: unsigned numbers (not after '^'); the FIRST for single-view tasks,
    the LAST for the four `_mv` NA tasks, where no number at all gives -1. None: no number in a
    single-view answer (lmms-eval raises there and scores 0)."""
    numbers = [float(n) for n in _SPAR_NUMBER.findall(as_text(pred))]
    if task in registry.SPARBENCH_LAST_NUMBER_TASKS:
        return numbers[-1] if numbers else -1.0
    return numbers[0] if numbers else None


def _parse_vci(text: str) -> dict[str, float]:
    """lmms-eval's `parse_instruction`: 'k:v' items split on ',' and ':'; keys are NOT stripped
    (" move_up:1" is an unknown key, read as 0) and any malformed item fails the whole string."""
    out = {}
    for item in text.split(","):
        key, value = item.split(":")  # ValueError unless exactly one ':' (caught by the caller)
        out[key] = float(value)
    return out


_VCI_COMPONENTS = (
    ("move_right", "move_left"),
    ("move_up", "move_down"),
    ("move_forward", "move_backward"),
    ("rotate_right", "rotate_left"),
    ("rotate_up", "rotate_down"),
)


def spar_vci(pred: object, answer: str) -> float:
    """lmms-eval's `compute_vci_metric`: five signed components (right-left, up-down,
    forward-backward, rotate right-left, rotate up-down), each scored with MRA, then averaged.

    Quirk kept: the arguments of MRA are swapped (the ground truth is passed as the prediction), so
    the relative error is |gt - pred| / |pred|, and the absolute error |gt| when the PREDICTED
    component is 0. A string that fails to parse scores 0."""
    try:
        p, g = _parse_vci(as_text(pred)), _parse_vci(str(answer))
    except ValueError:
        return 0.0
    total = 0.0  # summed in order, as np.mean does for fewer than 8 values: the same float
    for plus, minus in _VCI_COMPONENTS:
        p_val = p.get(plus, 0) - p.get(minus, 0)
        g_val = g.get(plus, 0) - g.get(minus, 0)
        total += mean_relative_accuracy(g_val, p_val)  # the swap, as upstream
    return total / len(_VCI_COMPONENTS)


def spar_score(task: str, pred: object, answer: str, gt_type: str | None = None) -> float:
    """One SPAR-Bench sample's official score in [0, 1] (accuracy, MRA or the view-change metric)."""
    kind = spar_task_kind(task, gt_type)
    if kind == "mca":
        return spar_exact_match(pred, answer)
    if kind == "vci":
        return spar_vci(pred, answer)
    value = spar_na_prediction(pred, task)
    try:
        target = float(answer)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if value is None else mean_relative_accuracy(value, target)


# --------------------------------------------------------------------------------------------------
# MMSI-Bench (README "Answer Extraction")
# --------------------------------------------------------------------------------------------------
_MMSI_DOUBLE_TICK = re.compile(r"``([^`]*)``")
_MMSI_TICK = re.compile(r"`([^`]*)`")
_MMSI_BRACE = re.compile(r"\{([^}]*)\}")
_MMSI_LETTER = re.compile(r"\b[A-D]\b(?!\s[a-zA-Z])")


def mmsi_extract(pred: object) -> str | None:
    """The README's extraction: narrow to ``...``, then `...`, then {...} (each step applied to
    the result of the previous one, first match each), then the FIRST capital A-D standing alone
    and not followed by a space and a letter ("A chair" is not an answer). None: no letter."""
    text = as_text(pred)
    for pattern in (_MMSI_DOUBLE_TICK, _MMSI_TICK, _MMSI_BRACE):
        match = pattern.search(text)
        if match:
            text = match.group(1)
    match = _MMSI_LETTER.search(text)
    return match.group() if match else None


def mmsi_correct(pred: object, gt: str) -> bool:
    """README: correct iff `gt.lower()` equals the first character of the extracted letter.

    README vs code: the VLMEvalKit class (`MMSIBenchDataset.evaluate`) skips the {...} step and
    also accepts "(x", "option x", "the answer is x" -- branches that can never fire on a one-letter
    extraction -- and sends failed extractions to a GPT judge. We reproduce the README (the
    benchmark's stated protocol, also lmms-eval's): offline, deterministic; a failed extraction is
    wrong (no LLM judge)."""
    letter = mmsi_extract(pred)
    if letter is None:
        return False
    return str(gt).lower().replace("\n", " ").strip() == letter.lower()[0]


# --------------------------------------------------------------------------------------------------
# One multi-view sample under its benchmark's protocol
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OfficialScore:
    value: float  # in [0, 1]: the verdict 1/0 (MindCube, MMSI, SPAR choices), SPAR's MRA or view-change metric
    kind: str  # SPAR's task kind ("mca", "na", "vci"); "mca" for MindCube and MMSI

    @property
    def correct(self) -> bool:
        return self.value == 1.0


def official_score(data_source: str, response: object, gt: MultiViewGroundTruth) -> OfficialScore:
    """A MindCube, SPAR or MMSI sample scored as its benchmark's harness scores it: MindCube's
    extractor on the whole response, SPAR-Bench's lmms-eval scorer and MMSI-Bench's README extractor
    on `harness_text`. Never raises on the response. A SPAR numeric ground truth without its task
    raises ValueError: which number the scorer reads depends on the task (the `_mv` tasks take the
    last one), and `star_verl.tasks.ground_truth` refuses such a ground truth before it gets here."""
    answer = str(gt.answer)
    if data_source == "mindcube":
        return OfficialScore(float(mindcube_correct(response, answer)), "mca")
    if data_source == "mmsi":
        return OfficialScore(float(mmsi_correct(harness_text("mmsi", response), answer)), "mca")
    if data_source != "spar":
        raise ValueError(f"official_score scores mindcube, spar and mmsi samples, not {data_source!r}")
    if gt.type == "numeric" and not gt.task:
        raise ValueError("a SPAR numeric ground truth needs its task (the _mv tasks read the last number, the others the first)")
    return OfficialScore(spar_score(gt.task, harness_text("spar", response), answer, gt.type), spar_task_kind(gt.task, gt.type))
