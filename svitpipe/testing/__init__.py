"""Test tooling: ``fake_upstream`` writes files laid out exactly like the upstream ones, with content the caller
gives (the tests, the benchmarks and ``scripts/make_sample.py`` use it)."""
