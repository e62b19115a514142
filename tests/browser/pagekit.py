"""Helpers of the activation page tests: register employees through the ERP API, read the page."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from plugins.erp import ErpServer, idem
from plugins.processes import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IMAGES = ROOT / "docs" / "images"
PASSWORD = "Morning-coffee-42"
PAGE = "/activate"


@dataclass
class Employee:
    staff_id: int
    login: str
    code: str

    @property
    def wrong_code(self) -> str:
        """A fixed wrong code (stable screenshots), never the real one."""
        return "000000" if self.code != "000000" else "111111"


def register(server: ErpServer, full_name: str, tag: str) -> Employee:
    """A new employee through the ERP's bot API (as the bot does): a real account and activation code."""
    body = {
        "full_name": full_name,
        "email": f"{tag}@example.com",
        "phone": "+79991234567",
        "position_code": "ENG",
        "rocketchat_user_id": f"rc-{tag}",
        "rocketchat_username": tag,
    }
    with server.client(server.bot_key) as client:
        response = client.post("/api/bot/v1/staff", json=body, headers=idem())
    assert response.status_code == 201, response.text
    created = response.json()
    return Employee(created["staff"]["id"], created["activation"]["login"], created["activation"]["code"])


def staff_status(server: ErpServer, employee: Employee) -> str:
    with server.client(server.bot_key) as client:
        response = client.get(f"/api/bot/v1/staff/{employee.staff_id}")
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


def alert_text(html: str) -> str:
    """The text of the page's role="alert" region (empty when there is none)."""
    match = re.search(r'<div class="alert"[^>]*role="alert"[^>]*>(.*?)</div>', html, re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(1))).strip() if match else ""


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the form has no CSRF token"
    return match.group(1)


def screenshot_path(name: str) -> Path:
    IMAGES.mkdir(parents=True, exist_ok=True)
    return IMAGES / name
