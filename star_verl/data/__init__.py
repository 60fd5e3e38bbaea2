"""veRL dataset classes (RL and SFT) and the loading pipeline they share, one module per job:
`settings` (`data.star`), `files` (reading), `rows` (row checks), `lengths` (length measurement and
its cache), `loading` (the pipeline: measure, select, length limit). The prompt and the pixel
arithmetic are below this package (`star_verl.prompts`, `star_verl.pixels`); `settings`, `files` and
`rows` import no veRL."""
