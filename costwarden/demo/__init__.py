"""costwarden demo: a multi-agent workflow through the real openai SDK against the local fake provider."""
