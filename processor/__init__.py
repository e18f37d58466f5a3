"""costwarden.processor: the budget span processor and its parts."""
