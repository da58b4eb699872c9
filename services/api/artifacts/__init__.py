"""Artifacts, labels and blobs (reference: shakenfist-artifacts-api.md)."""
