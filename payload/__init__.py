"""What runs inside a unit: the stage programs, ``python -m blut.payload <stage>``.

The payload imports only `blut.status` (to report events and metrics). Heavy
libraries (numpy, torch) are imported by the stage that needs them, never here.
"""
