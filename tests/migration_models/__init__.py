"""Declarations used by the migration tests (one package per scenario)."""
