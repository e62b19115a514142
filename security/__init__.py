"""Security scans runnable against a deployed stack (see docs/security.md)."""
