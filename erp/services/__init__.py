"""Domain services of the ERP: one module per concern, called by the API routers and the CLI."""
