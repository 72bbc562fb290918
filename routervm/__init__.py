"""routervm package."""
