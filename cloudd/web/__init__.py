"""cloudd.web package."""
