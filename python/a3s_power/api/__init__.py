"""HTTP APIs: Ollama's native `/api/*` (and, later, OpenAI and Anthropic `/v1/*`) on one Litestar app."""

from a3s_power.api.app import create_app

__all__ = ["create_app"]
