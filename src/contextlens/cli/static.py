"""Commands: static (see the module's issue)."""
