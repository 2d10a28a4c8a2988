"""Bringing data in: the HTTP clients of public services and the readers of publisher files.

Modules: `http` (the one retry policy and loop), `workers` (bounded thread pools),
`census_api` (the Census Data API), `geocoder` (the Census Geocoder), `tiger` (TIGER/Line
boundary downloads), `adi_file` (Neighborhood Atlas ADI files), `svi_file` (CDC SVI files).
"""
