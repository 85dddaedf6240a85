"""tippen-rt benchmarks: ``python -m bench [names...]`` (see bench/README.md).

Benchmarks are not tests: they print tables and append JSON lines to
``bench/results/results.jsonl``; nothing here asserts on timing.  Every
benchmark is bounded in time and talks only to 127.0.0.1.
"""
