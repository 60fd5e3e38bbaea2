"""star-verl: STAR-R1 (spatial transformation reasoning) as a plugin for veRL 0.9.x."""

__version__ = "0.1.0"
