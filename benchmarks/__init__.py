"""Side-by-side performance measurements (run by hand or `make bench`; never timed tests)."""
