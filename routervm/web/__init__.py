"""The router's HTTP resources that face cloudd (the control API)."""
