"""The gate between a built dataset and what is served: validate, publish atomically, quarantine.

Modules: `validation` (Great Expectations suites from the dataset specs), `publish` (versioned,
atomic publishing with quarantine), `rejects` (a linking run's rejected input rows, published
with its timeline).
"""
