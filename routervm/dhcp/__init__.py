"""Pure, I/O-free DHCPv4 for the virtual router: the wire codec (`packet`), the static host list
(`reservations`) and the server decisions (`logic`). Nothing here touches sockets or the reactor
beyond an injected clock."""
