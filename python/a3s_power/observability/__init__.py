"""Observability: Prometheus metrics (`/metrics`)."""
