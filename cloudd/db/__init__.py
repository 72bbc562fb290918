"""cloudd.db package."""
