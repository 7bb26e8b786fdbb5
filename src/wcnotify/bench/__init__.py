"""Benchmarks that print tables (``wcnotify bench …``); never timed assertions in tests."""
