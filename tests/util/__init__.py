"""tests.util package."""
