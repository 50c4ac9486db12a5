"""Commands: context (see the module's issue)."""
