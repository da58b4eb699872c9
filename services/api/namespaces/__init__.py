"""AuthService: tokens, namespaces, their keys, trusts and metadata."""
