"""Computing measures and indices from source rows: MOE rules, ACS measures, SVI, ADI.

Modules: `moe` (the Census Bureau's MOE formulas and reliability), `acs` (ACS measures from
the catalog), `svi` (CDC's Social Vulnerability Index), `adi` (the Area Deprivation Index
computed from ACS block groups).
"""
