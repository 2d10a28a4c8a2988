"""What every stage shares: errors, the workspace, atomic writes, dataset specs, GEOIDs, settings.

Modules: `errors` (the exception tree), `workspace` (folders and private files),
`atomic` (write-then-rename, symlink swaps), `datasets` (the published datasets' columns and
rules), `geography` (states and GEOIDs the way users say them), `csv_input` (CSV text read
with file/row/field errors), `settings` (`Settings`: the environment, read once, passed
down), `known_warnings` (third-party warnings dropped or shown).
"""
