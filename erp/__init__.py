"""The Photomatrix ERP side of the integration: the bot-integration API and its reference implementation."""

__version__ = "0.1.0"
