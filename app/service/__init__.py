"""The service layer: the facade that HTTP, MCP and the CLI call, the worker, and paging."""
