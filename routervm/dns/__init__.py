"""The virtual router's DNS (router.md §5): the authoritative in-memory data (`table`), a sans-IO
fast path for known names (`lean`) and the twisted.names server that serves both and forwards
everything else (`server`)."""
