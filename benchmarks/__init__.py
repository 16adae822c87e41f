"""nxdata's benchmark harness: nxdata side by side with raw psycopg, asyncpg and SQLAlchemy.

Run ``python -m benchmarks`` (or ``make bench``); ``--quick`` for a smoke run.
See docs/benchmarks.md.
"""
