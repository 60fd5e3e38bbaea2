"""doctor's output: a plain-text table of the checks, or JSON."""

from __future__ import annotations

import json
import textwrap
from dataclasses import asdict

from star_verl.doctor.context import FAIL, PASS, SKIP, Check


def _wrap(line: str, width: int) -> list[str]:
    lead = " " * (len(line) - len(line.lstrip()))
    wrapped = textwrap.wrap(
        line.strip(), width=width, initial_indent=lead, subsequent_indent=lead + "  ", break_long_words=False, break_on_hyphens=False
    )
    return wrapped or [""]


def format_table(checks: list[Check], width: int = 100) -> str:
    """A plain-text table: check | status | detail, with each failure's fix on the line below."""
    name_w = max([len("check"), *(len(c.name) for c in checks)])
    head = f"{'check':<{name_w}}  status  detail"
    lines = [head, "-" * max(len(head), 40)]
    indent = " " * (name_w + 10)
    for c in checks:
        # a detail's own lines (a bad file's rows, one per line) stay lines, each wrapped at its own indent
        detail = [part for line in c.detail.splitlines() for part in _wrap(line, max(width - len(indent), 30))] or [""]
        lines.append(f"{c.name:<{name_w}}  {c.status:<6}  {detail[0]}")
        lines.extend(indent + more for more in detail[1:])
        if c.fix and c.status == FAIL:
            for i, part in enumerate(textwrap.wrap(c.fix, width=max(width - len(indent) - 5, 30), break_long_words=False, break_on_hyphens=False)):
                lines.append(indent + ("fix: " if i == 0 else "     ") + part)
    counts = {s: sum(c.status == s for c in checks) for s in (PASS, FAIL, SKIP)}
    lines.append("")
    lines.append(f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped")
    return "\n".join(lines)


def format_json(checks: list[Check]) -> str:
    """The same four fields per check (name, status, detail, fix)."""
    return json.dumps([asdict(c) for c in checks], indent=1)
