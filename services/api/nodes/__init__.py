"""NodeService: the hypervisor nodes the scheduler records, their deletion,
events and metadata; the follow-up of a deletion; node states for instance
views."""
