"""blut: a terminal cockpit for ML training jobs."""

__version__ = "0.1.0"
