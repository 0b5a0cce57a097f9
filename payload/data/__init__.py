"""Market data for the quant stages: the packaged real set, a synthetic generator, user files."""
