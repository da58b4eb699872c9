"""TransferService: uploads, their conversion into artifacts, blob data."""
