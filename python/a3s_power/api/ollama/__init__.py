"""Ollama's native API (`/api/*`): wire types, services and thin routes."""
