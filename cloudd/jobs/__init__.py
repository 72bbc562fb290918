"""cloudd.jobs package."""
