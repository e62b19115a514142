"""`python -m bot.ready`: the bot's readiness as an operator reads it, from inside its container
(`docker exec photomatrix-chatbot python -m bot.ready`): GET /readyz on its own port, over HTTPS when it
serves it (BOT_HTTP_TLS_CERTFILE; the chain checked against BOT_HTTP_TLS_CAFILE, the internal CA that
signs it, else BOT_CA_FILE), and prints `200 {...}` or `503 {...}` with the failing check. Exit 0 when
ready, 1 when not, 2 when nothing answers. BOT_CA_FILE is the public name's trust (the proxy's ACME
certificate needs the system's or the ACME CA's roots), which need not include the internal CA."""

from __future__ import annotations

import http.client
import os
import ssl
import sys

TIMEOUT = 5.0


def main() -> int:
    port = int(os.environ.get("BOT_HTTP_PORT", "8080"))
    tls = bool(os.environ.get("BOT_HTTP_TLS_CERTFILE"))
    connection: http.client.HTTPConnection
    if tls:
        cafile = os.environ.get("BOT_HTTP_TLS_CAFILE") or os.environ.get("BOT_CA_FILE") or None
        context = ssl.create_default_context(cafile=cafile)
        # Its own port by loopback address, which no certificate names: the chain is still checked.
        context.check_hostname = False
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=TIMEOUT, context=context)
    else:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.request("GET", "/readyz")
        response = connection.getresponse()
        body = response.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        scheme = "https" if tls else "http"
        print(f"bot: nothing answers on {scheme}://127.0.0.1:{port}/readyz: {exc}", file=sys.stderr)
        return 2
    finally:
        connection.close()
    print(response.status, body)
    return 0 if response.status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
