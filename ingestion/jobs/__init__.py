"""The flows that string the stages together: ingest verbs, the demo pipeline, Spark jobs.

Modules: `ingest` (fetch or read, derive, publish: one verb per source), `pipeline` (linking
a history file, the whole demo run), `spark_jobs` (the same derivations on Spark).
"""
