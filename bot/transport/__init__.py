"""Transports: how messages reach the bot (realtime stream or outgoing webhook) and how it acts (REST)."""
