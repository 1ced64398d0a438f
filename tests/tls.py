"""TLS for tests: a self-signed certificate for 127.0.0.1 made with the ``openssl`` command, and
a ``socketserver`` server wrapped to speak HTTPS on loopback."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from helpers import serving


def self_signed_cert(openssl: str, folder: Path) -> tuple[Path, Path]:
    """Write a one-day self-signed certificate for ``127.0.0.1`` and its key; return (cert, key)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


@contextmanager
def tls_serving(server: Any, cert: Path, key: Path) -> Iterator[str]:
    """Serve a bound ``socketserver`` server over TLS in a background thread; yield its https URL."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    # The handshake happens in the handler's thread on its first read, so a client that rejects
    # the certificate cannot stall the accepting thread.
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    # A client refusing the certificate is the point of some tests: no tracebacks for it.
    server.handle_error = lambda request, client_address: None
    with serving(server) as url:
        yield url.replace("http://", "https://", 1)
