"""The guest password server (router.md §2).

`routervm.password.codec` is the sans-IO wire format and `routervm.password.store` keeps the
pending passwords (TTL, replacement, acknowledgement, sealed persistence); the HTTP resource that
identifies the requesting VM is built on top of them.
"""
