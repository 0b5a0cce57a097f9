"""Verb groups of the `blut` command (recipe, plan, cache, data), each a typer sub-app.

Each module imports only typer and rich at import time; the engine is imported
inside the commands, so `blut --help` stays light.
"""
