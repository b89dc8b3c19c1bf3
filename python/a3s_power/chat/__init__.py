"""Chat prompt rendering helpers (templates, and later thinking / tool-call parsing)."""
