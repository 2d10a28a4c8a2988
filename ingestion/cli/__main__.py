"""``python -m ingestion.cli``: the ``sdoh`` command without the console script."""

from ingestion.cli import main

main()
