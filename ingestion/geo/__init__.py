"""Where patients lived, and when: address histories linked to 2010 and 2020 areas.

Modules: `linking` (reading address histories, point-in-polygon and ZIP fallback),
`boundaries` (loading boundary files), `zip_crosswalk` (ZIP to area links),
`pseudonym` (keyed patient pseudonyms).
"""
