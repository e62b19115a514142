"""Maintenance tools of the simulator (not imported at run time)."""
