"""Bringing data in: the HTTP clients of public services and the readers of publisher files.

Modules: `http` (the one retry policy and loop), `workers` (bounded thread pools),
`download_cache` (the verified, resumable cache every file download goes through),
`census_api` (the Census Data API), `geocoder` (the Census Geocoder), `tiger` (TIGER/Line
boundary downloads), `publisher_file` and `publisher_download` (every publisher area file as
its source spec declares it: Neighborhood Atlas ADI, EJI, CHR, ...), `svi_file` (CDC SVI files),
and the readers of patient data: `fhir` (FHIR R4 Bulk NDJSON and Bundles), `omop` (OMOP CDM
CSVs, DuckDB, PostgreSQL), `synthea` (Synthea CSV exports), with the row checks they share in
`patient_rows`.
"""
