"""Anthropic-compatible Messages API (`/v1/messages`): wire types, service and thin routes."""
