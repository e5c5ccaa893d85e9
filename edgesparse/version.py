"""The package's version, in a leaf module: modules that stamp it into files import it from here,
never from the package root (whose lazy workstation API would make that an import cycle)."""

__version__ = "0.1.0"
