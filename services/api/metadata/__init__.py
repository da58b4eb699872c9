"""Metadata of every kind of object: the rules of keys and values, and the
get/set/delete routes written once for every kind."""
