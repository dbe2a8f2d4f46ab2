"""Benchmarks (``make bench``); a package so that ``python -m bench.floor.run`` works."""
