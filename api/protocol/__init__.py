"""Standard wire protocols spoken beside our own API (one module per protocol, no HTTP framework)."""
