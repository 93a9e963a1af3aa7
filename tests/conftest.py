"""Shared pytest setup: the conformance plugin (its ``backend`` fixture), and pytester for inner
pytest sessions (the plugin's own tests)."""

pytest_plugins = ["pytester", "nnx.testing.plugin"]
