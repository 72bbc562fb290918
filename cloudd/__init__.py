"""cloudd: the management server of an IaaS cloud that speaks Apache CloudStack's query API."""

__version__ = "0.1.0"
# The CloudStack release whose wire behaviour the API follows; reported to clients.
CLOUDSTACK_VERSION = "4.19.1.0"
