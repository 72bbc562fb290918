"""Clients of the appliances' control APIs (JSON over mutually authenticated TLS)."""
