"""Answer formats, parsing and per-task scoring. Pure Python: no torch, no veRL."""
