"""Load checks of the service (see docs/benchmarks.md)."""
