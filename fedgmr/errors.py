"""Errors the user sees as one line (the CLI prints them and exits 2).

Its own module so that methods, data loading and the config can all raise it without importing each other:
``fedgmr.config`` imports the method registry to resolve a config, so the methods must not import the config.
"""


class ConfigError(ValueError):
    """A configuration problem, reported to the user as one line."""
