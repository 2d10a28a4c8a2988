"""The offline demo: a synthetic region and a local server that answers as the Census APIs do.

Modules: `region` (the synthetic region's boundaries, ACS answers and patients), `replay`
(an HTTP server replaying Census Data API answers, with injectable faults).
"""
