"""cloudd.util package."""
