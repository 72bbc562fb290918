"""Code the appliances share: the control channel's TLS, its JSON resources and atomic state files.

It depends on Twisted alone, so `routervm` and `ssvm` stay free of the management server's
dependencies; `cloudd` may import it too.
"""
