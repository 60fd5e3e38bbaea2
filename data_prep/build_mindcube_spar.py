#!/usr/bin/env python
"""MindCube + SPAR-7M training splits (RL, validation, SFT pool) and the multi-view benchmarks
(MindCube-Tiny, SPAR-Bench, MMSI-Bench) as veRL parquet. The logic is `star_verl.prep.build_multiview`;
`--help` lists the options."""

import sys

from star_verl.prep.build_multiview import main

if __name__ == "__main__":
    sys.exit(main())
