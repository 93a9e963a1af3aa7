"""nnx's version, in a module of its own: the modules that report it (file metadata, the
workers' check) import it without importing the package around them."""

__version__ = "0.1.0"
