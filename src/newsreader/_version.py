"""The package version, in a module of its own: anything may import it, the package included."""

__version__ = "0.1.0"
