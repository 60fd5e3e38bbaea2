"""One spelling per word, American, in identifiers and prose alike: the data and the libraries already
write it so (TRANCE's `color`, `gray` and `center`, `normalize_object`, Hugging Face's `tokenizer`,
`initialize`, `optimizer`). A scan of the project's text files fails on a British spelling, except
the words the data itself contains, listed with the file that reads them."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCANNED = ("star_verl", "tests", "bench", "data_prep", "docs", "recipes", "testing_support", "README.md")
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".sh", ".txt", ".toml"}
NOT_SCANNED = {
    "tests/test_spelling_on_cpu.py",  # the British spellings themselves
}

BRITISH = re.compile(
    r"colour|favour|honour|neighbour|behaviour|labour|flavour|licence|centre|metre|\bgrey\b|whilst|amongst"
    r"|(?:normal|serial|token|initial|optim|penal|recogn|general|final|vector|singular|organ|summar|minim|maxim|priorit|categor"
    r"|character|standard|util|visual|custom|real)is(?:e|ed|es|ing|ation|ations|er|ers|able)\b"
    r"|parenthesised|analys(?:e|ed|ing)\b|bevelled|modelling|modelled|labelled|travelled|signalling|judgement|programme|defence|catalogue",
    re.IGNORECASE,
)
# Words of the data: what a model may write, or a benchmark's own text.
DATA_WORDS = {
    "star_verl/tasks/numeric.py": {"metre"},  # length units a model may write ("2.6 metres")
    "star_verl/tasks/view_change.py": {"metre"},
    "tests/test_multiview_scoring_on_cpu.py": {"metre"},
    "star_verl/prep/spar.py": {"centre"},  # a word of SPAR's questions, skipped when reading object names
    "tests/test_tvr_reward_on_cpu.py": {"colour"},  # a model writing the British attribute name: not an attribute
}


def british_spellings(root: Path, data_words: dict[str, set[str]]) -> list[str]:
    """`path:line: word` for each British spelling under the scanned paths of `root`."""
    found = []
    for top in SCANNED:
        paths = [root / top] if (root / top).is_file() else sorted((root / top).rglob("*"))
        for path in paths:
            name = path.relative_to(root).as_posix()
            if path.suffix not in SUFFIXES or not path.is_file() or name in NOT_SCANNED or "__pycache__" in path.parts:
                continue
            allowed = data_words.get(name, set())
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                for match in BRITISH.finditer(line):
                    if not any(word in match.group(0).lower() for word in allowed):
                        found.append(f"{name}:{number}: {match.group(0)}")
    return found


def test_the_project_spells_the_american_way():
    found = british_spellings(REPO, DATA_WORDS)
    assert not found, "British spellings (the project writes American ones):\n  " + "\n  ".join(found)


def test_the_scan_finds_british_spellings_and_keeps_data_words(tmp_path):
    (tmp_path / "star_verl").mkdir()
    (tmp_path / "star_verl" / "a.py").write_text('COLOUR = "grey"  # normalised, gray, color\n\ndef initialise(): ...\n')
    (tmp_path / "star_verl" / "units.py").write_text('UNITS = {"metres": 1.0, "meters": 1.0}\n')
    (tmp_path / "README.md").write_text("The licence, a greyhound, and the analysis.\n")
    assert british_spellings(tmp_path, {"star_verl/units.py": {"metre"}}) == [
        "star_verl/a.py:1: COLOUR",
        "star_verl/a.py:1: grey",
        "star_verl/a.py:1: normalised",
        "star_verl/a.py:3: initialise",
        "README.md:1: licence",
    ]
