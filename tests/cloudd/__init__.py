"""tests.cloudd package."""
