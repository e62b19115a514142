"""The activation page's fixtures: a real ERP server, and Debian's chromium driven by Playwright (never a
downloaded browser)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from browser.pagekit import CHROMIUM, CHROMIUM_ARGS
from plugins.erp import ErpServer, start_erp_server


@pytest.fixture(scope="module")
def page_erp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ErpServer]:
    """A real ERP server (SQLite) trusting 127.0.0.1 as its proxy, with a sign-in URL for the success page."""
    server = start_erp_server(
        tmp_path_factory.mktemp("erp-page"),
        settings={"ERP_TRUSTED_PROXIES": "127.0.0.1/32", "ERP_WEB_LOGIN_URL": "https://erp.example/login"},
        name="erp-page",
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """Debian's chromium under Playwright; missing chromium skips locally and fails in CI."""
    if not os.access(CHROMIUM, os.X_OK):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: .ci/apt-packages.txt installs chromium")
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield browser
        finally:
            browser.close()
