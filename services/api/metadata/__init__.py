"""Metadata of every kind of object: the rules of keys and values."""
