"""The appliance's HTTP faces: the mutually authenticated control API and the signed image server."""
