"""The HTTP API: app factory, routes per resource, security and observability."""
