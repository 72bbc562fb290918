"""Network device names as the kernel accepts them: the control messages' check
(`appliance.messages.names`), re-exported for the router's own modules."""

from __future__ import annotations

from appliance.messages.names import is_interface_name

__all__ = ["is_interface_name"]
