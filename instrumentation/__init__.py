"""costwarden.instrumentation: one module per SDK or framework, on shared wrapping pieces."""
