"""The activation page through the proxy: the role template's own `/activate` locations and proxy headers
in a real nginx (Debian's) with TLS, and chromium on HTTPS — the cookie becomes `__Host-` and Secure, the
origin check holds behind the proxy, wrong then right code works."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from browser.pagekit import PAGE, PASSWORD, register, staff_status
from plugins.erp import ErpServer
from plugins.processes import ROOT, free_port, wait_listening

pytestmark = pytest.mark.e2e
ROLE = ROOT / "roles" / "tls_proxy"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def role_pieces() -> tuple[list[str], list[str], list[str]]:
    """From the role's template: the activation rate-limit lines, the server-level proxy headers and the
    `/activate` locations, with the role's default values filled in."""
    template = (ROLE / "templates" / "nginx.conf.j2").read_text(encoding="utf-8")
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))

    def fill(text: str) -> str:
        return re.sub(r"\{\{\s*(tls_proxy_\w+)\s*\}\}", lambda m: str(defaults[m.group(1)]), text)

    limits = [
        fill(line.strip())
        for line in template.splitlines()
        if line.strip().startswith("limit_req_status") or "zone=erp_activation:" in line
    ]
    headers = [
        line.strip()
        for line in template.splitlines()
        if re.match(r"^    proxy_(set_header|http_version) ", line)
    ]
    locations = [
        fill(block)
        for block in re.findall(r"^    location = /activate\S* \{.*?^    \}", template, re.M | re.S)
    ]
    return limits, headers, locations


def test_the_role_template_routes_the_page_to_the_erp():
    limits, headers, locations = role_pieces()
    assert len(limits) == 2
    assert "proxy_set_header X-Forwarded-Proto https;" in headers
    assert [re.match(r"\s*location = (\S+)", block).group(1) for block in locations] == [  # type: ignore[union-attr]
        "/activate",
        "/activate/style.css",
    ]
    assert "zone=erp_activation" in locations[0]
    # The proxy below sets only $erp_upstream: the page's locations must not need another variable.
    assert set(re.findall(r"proxy_pass \$(\w+);", "".join(locations))) == {"erp_upstream"}


@pytest.fixture(scope="module")
def proxy(page_erp: ErpServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """nginx on 127.0.0.1 with a self-signed certificate for localhost, in front of `page_erp` (which
    trusts 127.0.0.1 as its proxy): its URL and its access log."""
    if not Path(NGINX).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is not installed (.ci/apt-packages.txt lists it)")
        pytest.skip("nginx is not installed")
    tmp = tmp_path_factory.mktemp("proxy")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    limits, headers, locations = role_pieces()
    port = free_port()
    nl = "\n"
    (tmp / "tmp").mkdir()
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
worker_processes 1;
events {{ worker_connections 64; }}
http {{
  access_log {tmp}/access.log;
  client_body_temp_path {tmp}/tmp/body;
  proxy_temp_path {tmp}/tmp/proxy;
  fastcgi_temp_path {tmp}/tmp/fastcgi;
  uwsgi_temp_path {tmp}/tmp/uwsgi;
  scgi_temp_path {tmp}/tmp/scgi;
  {nl.join(limits)}
  server {{
    listen 127.0.0.1:{port} ssl;
    server_name localhost;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    {nl.join(headers)}
    set $erp_upstream {page_erp.base_url};
{nl.join(locations)}
  }}
}}
""",
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [NGINX, "-p", str(tmp), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_listening(proc, port, "nginx", timeout=15)
        yield f"https://localhost:{port}", tmp / "access.log"
    finally:
        proc.terminate()
        proc.wait(10)


def test_activation_through_the_https_proxy(
    chromium: Any, page_erp: ErpServer, proxy: tuple[str, Path]
) -> None:
    from playwright.sync_api import expect

    url, access_log = proxy
    employee = register(page_erp, "Волкова Дарья", "volkova-proxy")
    context = chromium.new_context(locale="en-US", ignore_https_errors=True)
    context.set_default_timeout(20_000)
    try:
        page = context.new_page()
        response = page.goto(url + PAGE)
        assert response is not None
        assert response.status == 200
        expect(page.locator("main")).to_have_css("max-width", "512px")  # the stylesheet came through too
        cookies = {c["name"]: c for c in context.cookies()}
        assert set(cookies) == {"__Host-erp_activate"}
        assert cookies["__Host-erp_activate"]["secure"] is True
        assert cookies["__Host-erp_activate"]["sameSite"] == "Strict"
        for code in (employee.wrong_code, employee.code):
            page.get_by_label("Login", exact=True).fill(employee.login)
            page.get_by_label("Activation code", exact=True).fill(code)
            page.get_by_label("New password", exact=True).fill(PASSWORD)
            page.get_by_label("Repeat the password", exact=True).fill(PASSWORD)
            page.get_by_role("button", name="Activate").click()
            if code == employee.wrong_code:
                expect(page.get_by_role("alert")).to_contain_text("The login or the code is wrong")
        expect(page.get_by_role("heading", level=1)).to_have_text("Your account is active")
    finally:
        context.close()
    assert staff_status(page_erp, employee) == "active"
    log = access_log.read_text(encoding="utf-8")
    assert log.count('"POST /activate HTTP/') == 2
    assert employee.code not in log  # never in a URL, so never in the proxy's log
