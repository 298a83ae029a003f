"""Benchmarks (not tests): each module is one command, `python -m bench.<name>`, run from the repo root.

`python -m bench.run_all` runs every one and rewrites the results table in bench/README.md.
"""
