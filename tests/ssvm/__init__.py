"""tests.ssvm package."""
