#!/usr/bin/env python
"""TVR data as veRL parquet (train / val / test): from the TRANCE release (`--trance DIR`) or from
the built-in synthetic generator (`--synthetic N --seed S`). The logic is `star_verl.prep.build_tvr`
(converter: `star_verl.prep.trance`, generator: `star_verl.prep.synthetic_tvr`); `--help` lists the options."""

import sys

from star_verl.prep.build_tvr import main

if __name__ == "__main__":
    sys.exit(main())
