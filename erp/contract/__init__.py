"""A contract test suite for any implementation of the bot-integration API (needs only httpx).

    python -m erp.contract --url https://erp.example.com --key BOT_KEY [--admin-key KEY] [--read-only]

Without --read-only it registers test employees (names `Контракт …`, emails contract-…@example.com).
"""
