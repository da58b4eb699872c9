"""The api's clients of the other services: eventlog, scheduler, node agents."""
