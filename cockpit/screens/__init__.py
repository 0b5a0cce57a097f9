"""The cockpit's screens: Jobs (home), Job, System, Replay, and the dialogs."""
