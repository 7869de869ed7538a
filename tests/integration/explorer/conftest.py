"""Fixtures for the explorer's integration tests live in the test module; helpers in explorer_kit.py."""
