"""Terminal display with rich (imported lazily: never on the `run` path)."""
