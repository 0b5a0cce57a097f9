"""The engine: job store, submission, the per-job driver, reconciliation, CLI-facing verbs."""
