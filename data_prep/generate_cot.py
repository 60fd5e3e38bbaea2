#!/usr/bin/env python
"""Teacher chains of thought for the SFT cold start (STAR-R1 stage 1): asks an OpenAI-compatible
chat-completions endpoint for three-step chains on an SFT pool, caches every answer (a rerun resumes),
keeps the chains whose answer `compute_score` finds right and that follow the three steps, and writes
train/val SFT parquet and a per-category report. The logic is `star_verl.prep.teacher`; `--help` lists
the options."""

import sys

from star_verl.prep.teacher.run import main

if __name__ == "__main__":
    sys.exit(main())
