"""InstanceService: the instance state machine, from create to purge."""
