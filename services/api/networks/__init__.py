"""NetworkService: networks, their addresses, VXLAN ids and interfaces (NICs)."""
