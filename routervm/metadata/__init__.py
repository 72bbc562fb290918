"""The guest metadata / user-data service (router.md §3).

`routervm.metadata.content` computes every answer for one VM from its record; the HTTP resource
that identifies the requesting VM and serves those bytes is built on top of it.
"""
