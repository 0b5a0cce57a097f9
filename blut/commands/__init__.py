"""Verbs of the `blut` command: the groups recipe, plan, cache and data (each a click group),
train, and what they share (common, following).

Each module imports only click and rich at import time; the engine is imported
inside the commands, so `blut --help` stays light.
"""
