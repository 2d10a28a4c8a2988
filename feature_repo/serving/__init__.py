"""Serving the features: the store, training frames, online lookups, HTTP, materialization, Spark.

Modules: `store` (building the FeatureStore for a workspace and profile), `lookup_rules`
(which GEOID and vintage a patient reads at time t), `retrieval` (point-in-time training
frames), `online` (online lookups), `materialize` (writing and verifying the online store),
`server` (the authenticated HTTP feature server), `spark` (training frames on Spark).
"""
