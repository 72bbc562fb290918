"""cloudd.api package."""
