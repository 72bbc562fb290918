"""tests.routervm package."""
