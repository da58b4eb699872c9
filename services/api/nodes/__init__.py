"""NodeService: the hypervisor nodes, as the scheduler records them."""
