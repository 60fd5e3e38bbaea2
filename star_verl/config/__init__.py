"""Hydra config root (`pkg://star_verl.config`); `recipe/` is the top-level `recipes/` folder.

In a source checkout or an editable install `recipe` is a symbolic link to `../../recipes`; the
wheel build copies the files it points at, so both install modes see the same recipes.
"""
