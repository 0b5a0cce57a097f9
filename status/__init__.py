"""The event stream: schema, writer, tailer, job-state fold and Parquet metrics.

This package imports nothing else of blut. Heavy readers (pyarrow, pandas) are
imported lazily by `blut.status.metrics` only.
"""
