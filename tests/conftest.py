"""Shared pytest setup: pytester runs inner pytest sessions (the conformance plugin's tests)."""

pytest_plugins = ["pytester"]
