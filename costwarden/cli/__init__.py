"""The costwarden command line."""
