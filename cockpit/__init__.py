"""The face of blut: rich renderers for the CLI (and, later, the Textual app).

Nothing here is imported by blut.jobs/status/containment; keep module imports
light so `blut --help` never pulls in textual.
"""
