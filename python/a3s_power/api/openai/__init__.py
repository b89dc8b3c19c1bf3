"""OpenAI-compatible API (`/v1/*`): wire types, services and thin routes."""
