"""veRL dataset classes (RL and SFT) and what they share (`common`); they import veRL. The pixel
arithmetic they use is `star_verl.pixels` (pure Python, PIL), shared with data prep and evaluation."""
