"""veRL dataset classes (RL and SFT). `pixels` is pure Python (PIL); the rest imports veRL."""
