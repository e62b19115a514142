"""Command logic: parser, registration dialog, command router. Knows nothing of transports."""
