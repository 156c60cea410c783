"""The plugin's version: its own module, importing nothing, so that any part can read it."""

__version__ = "0.1.0"
