"""HTTP routers of the ERP service."""
