"""Converters' library code: every converter writes rows through `star_verl.prep.schema`."""
