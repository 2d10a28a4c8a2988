"""Serving the features: the store, training frames, online lookups, HTTP, materialization, Spark.

Modules: `profiles` (which feature_store.yaml a workspace runs under), `store` (building the
FeatureStore for a workspace and profile), `lookup_rules` (which GEOID and vintage a patient
reads at time t, and why a value is missing), `retrieval` (point-in-time training frames),
`online` (online lookups), `feast_reads` (online reads through Feast), `online_sqlite` (the
embedded SQLite online store read without importing Feast), `materialize` (writing and
verifying the online store), `server` (the authenticated HTTP feature server), `spark`
(training frames on Spark).
"""
