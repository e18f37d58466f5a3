"""A local fake LLM provider that speaks real providers' HTTP APIs, for tests, the demo and benchmarks."""
