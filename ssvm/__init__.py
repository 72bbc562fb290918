"""ssvm package."""
