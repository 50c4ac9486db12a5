"""Commands: search (see the module's issue)."""
