"""REST API modules, one per endpoint group; importing them registers their endpoints."""

from . import authn, chat, integrations, misc, roles, rooms, settings, users

MODULES = (authn, chat, integrations, misc, roles, rooms, settings, users)
