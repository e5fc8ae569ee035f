"""`make eval`: every module here with a `run() -> str` prints its tables."""
