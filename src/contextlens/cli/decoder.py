"""Commands: decoder (see the module's issue)."""
