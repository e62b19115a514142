"""Day-2 operations tools (read-only status)."""
