"""Issue 10, proxy → bot for real: the bot's own HTTPS server (bot.app.http_server_config with its webhook
route, a certificate from a throwaway CA) behind a real nginx (the project's image when this machine has it,
else Debian's binary) carrying the role template's own lines of the /bot/webhook location. The webhook
passes with the internal CA and the bot's name (chatbot), and fails (502, certificate verify error) with
another CA or another name."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest
from plugins.pki import make_test_pki
from plugins.processes import free_port
from roles.test_erp_upstream_tls import TEMPLATE, run_nginx, stop_nginx, upstream_tls_macro
from sim.test_webhook_tls import TOKEN, BotHttps

pytestmark = pytest.mark.integration

SERVER_NAME = "chatbot"  # chatbot_tls_server_name: first in every bot certificate


def bot_location_lines(ca: Path, name: str) -> list[str]:
    """The /bot/webhook location's upstream TLS lines as the role's template writes them (the macro, called
    for the bot's name), with this test's CA and name."""
    template = TEMPLATE.read_text(encoding="utf-8")
    start = template.index("location = /bot/webhook {")
    block = template[start : template.index("proxy_pass $bot_upstream;", start)]
    assert "{{ upstream_tls(tls_proxy_bot_tls_name) | indent(6) }}" in block, block
    return upstream_tls_macro(ca, name)


def start_nginx(tmp: Path, bot_port: int, ca: Path, name: str) -> tuple[subprocess.Popen, str, Path, str]:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "tmp").mkdir(exist_ok=True)
    port = free_port()
    nl = "\n      "
    (tmp / "nginx.conf").write_text(
        f"""
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
worker_processes 1;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/tmp/body;
  proxy_temp_path {tmp}/tmp/proxy;
  fastcgi_temp_path {tmp}/tmp/fastcgi;
  uwsgi_temp_path {tmp}/tmp/uwsgi;
  scgi_temp_path {tmp}/tmp/scgi;
  server {{
    listen 127.0.0.1:{port};
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    location = /bot/webhook {{
      rewrite ^ /webhook break;
      {nl.join(bot_location_lines(ca, name))}
      proxy_pass https://127.0.0.1:{bot_port};
    }}
  }}
}}
""",
        encoding="utf-8",
    )
    process, container = run_nginx(tmp, ca, port)
    return process, f"http://127.0.0.1:{port}", tmp / "error.log", container


@pytest.mark.parametrize(
    ("case", "expected"),
    [("right CA and name", 200), ("another CA", 502), ("another name", 502)],
)
def test_nginx_verifies_the_bot_certificate_against_the_internal_ca(
    tmp_path: Path, case: str, expected: int
) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "other").mkdir()
    # The bot's certificate names as chatbot_tls_names starts them: the name the proxy checks first.
    pki = make_test_pki(tmp_path / "pki", ca_name="Photomatrix internal CA", names=(SERVER_NAME, "127.0.0.1"))
    other = make_test_pki(tmp_path / "other", ca_name="Another CA")
    bot = BotHttps(pki)
    ca = other.ca if case == "another CA" else pki.ca
    name = "erp-api" if case == "another name" else SERVER_NAME
    try:
        process, url, error_log, container = start_nginx(tmp_path / "nginx", bot.port, ca, name)
        try:
            payload = {"token": TOKEN, "message_id": "m1", "channel_id": "r1", "user_id": "u1", "text": "hi"}
            status = httpx.post(f"{url}/bot/webhook", json=payload, timeout=10).status_code
        finally:
            stop_nginx(process, container)
    finally:
        bot.close()
    log = error_log.read_text()
    assert status == expected, (status, log[-2000:])
    if expected == 200:
        assert bot.router.messages.get(timeout=5).text == "hi"
    else:
        assert bot.router.messages.empty()
        assert re.search(r"upstream SSL certificate (verify error|does not match)", log), log[-2000:]
