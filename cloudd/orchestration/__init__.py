"""The work behind commands, callable without an API caller: state machines, the operations on
infrastructure, storage and images, and the background tasks (host pings, download polling) that
drive them. The API layer calls it for its callers; jobs, timers and recovery call the same code.
Nothing here imports `cloudd.api` or `cloudd.web`.
"""
