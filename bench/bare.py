"""The bare ceiling: a Starlette + uvicorn endpoint that parses a CSR and returns one
5-minute P-256 certificate per request, and nothing else (no token, no database, no log).

``POST /`` with ``{"csr": PEM}`` → 200 ``{"certificate": PEM}``. Run by the same load
generator with the same worker count as the service (``bench.__main__``), it is what the
signing service's rate is divided by: everything the service does beyond this is the cost of
tokens, timestamps, transparency logs and storage.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

VALIDITY = timedelta(minutes=5)


def create() -> Starlette:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bare ceiling CA")])

    async def issue(request: Request) -> Response:
        csr = x509.load_pem_x509_csr(json.loads(await request.body())["csr"].encode())
        if not csr.is_signature_valid:
            return Response(b'{"detail": "bad CSR"}', 400, media_type="application/json")
        now = datetime.now(UTC).replace(microsecond=0)
        cert = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca_name)
                .public_key(csr.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now).not_valid_after(now + VALIDITY)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        body = json.dumps({"certificate": cert.public_bytes(Encoding.PEM).decode()})
        return Response(body.encode(), media_type="application/json")

    return Starlette(routes=[Route("/", issue, methods=["POST"])])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(workers: int) -> Iterator[tuple[str, int]]:
    """The bare endpoint under uvicorn with ``workers`` processes: (url, process group id)."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.bare:create", "--factory", "--host",
         "127.0.0.1", "--port", str(port), "--workers", str(workers), "--log-level",
         "warning", "--no-access-log"], start_new_session=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the bare endpoint did not start") from None
                time.sleep(0.1)
        time.sleep(0.5 * workers)  # every worker listening
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
