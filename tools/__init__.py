"""Developer tools run by `dev.py` (not part of the installed package)."""
