"""Authentication, network checks and rate limiting of the ERP API."""
