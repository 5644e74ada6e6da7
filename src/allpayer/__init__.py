"""allpayer: an engine for value-based health care payment programs."""

__version__ = "0.1.0"
