"""The web page at `/`: server-rendered views of the projects, search, sessions, events and
the service's state, with a small script of its own (no build step, no third-party assets)."""
