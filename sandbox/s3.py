"""An S3 endpoint on loopback (moto's server) for tests, benchmarks and the demo.

:class:`S3Server` runs ``python -m ftrack_transfer.sandbox.s3 --port 0`` as a
subprocess (isolated from the caller's GIL and memory), which binds 127.0.0.1 on a free
port and prints one ready line with its URL. The server object makes random
credentials per start so clients go through the normal boto3 credential chain
(:meth:`S3Server.env`), and the server checks every request's SigV4 signature against
them (moto alone accepts any): a wrong key or secret is refused as S3 refuses it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
READY = "ftrack-transfer sandbox s3 listening on "
_START_TIMEOUT = 30.0
_KEY_ENV = "FTRACK_TRANSFER_SANDBOX_S3_ACCESS_KEY"
_SECRET_ENV = "FTRACK_TRANSFER_SANDBOX_S3_SECRET_KEY"  # noqa: S105 - a variable's name


class S3Server:
    """moto's S3 server in a subprocess on ``127.0.0.1``.

    Attributes after :meth:`start`: ``endpoint_url``, ``region``, ``access_key``,
    ``secret_key`` and ``port``.
    """

    def __init__(self, region: str = "us-east-1", log_dir: Path | None = None) -> None:
        self.region = region
        self.endpoint_url = ""
        self.port = 0
        self.access_key = ""
        self.secret_key = ""
        self._log_dir = log_dir
        self.log_path: Path | None = None
        self._process: subprocess.Popen[str] | None = None
        self._client: Any = None
        self._finalizer: weakref.finalize | None = None

    def start(self) -> S3Server:
        if self.running:
            return self
        # Random per start: nothing may rely on fixed credentials, and none is a secret.
        self._client = None
        self.access_key = "AKIA" + secrets.token_hex(8).upper()
        self.secret_key = secrets.token_urlsafe(30)
        log_dir = self._log_dir or Path(tempfile.mkdtemp(prefix="ftrack-transfer-s3-"))
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / "moto.log"
        # The credentials reach the server through its environment, never its command line.
        env = {**os.environ, _KEY_ENV: self.access_key, _SECRET_ENV: self.secret_key}
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ftrack_transfer.sandbox.s3",
                    "--port",
                    "0",
                    "--watch-stdin",
                ],
                # The server exits when this pipe closes: a crashed caller leaves nothing behind.
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,
                env=env,
            )
        self._finalizer = weakref.finalize(self, _terminate, self._process)
        self.endpoint_url = self._await_ready()
        self.port = int(self.endpoint_url.rsplit(":", 1)[1])
        return self

    def _await_ready(self) -> str:
        assert self._process is not None and self._process.stdout is not None
        deadline = time.monotonic() + _START_TIMEOUT
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not selector.select(deadline - time.monotonic()):
                    break
                line = self._process.stdout.readline()
                if not line:
                    break  # the process ended before it was ready
                if line.startswith(READY):
                    return line[len(READY) :].strip()
        self.stop()
        log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path else ""
        raise RuntimeError(f"the sandbox S3 server did not start; its log:\n{log}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            _terminate(process)

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def env(self) -> dict[str, str]:
        """Environment variables that point a default boto3 credential chain here."""
        return aws_env(self.access_key, self.secret_key, self.region)

    def client(self) -> Any:
        """A boto3 S3 client for this server (for setting up and inspecting tests)."""
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _new_client(self) -> Any:
        return s3_client(self.endpoint_url, self.access_key, self.secret_key, self.region)

    def create_bucket(self, name: str) -> str:
        if not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", name):
            raise ValueError(f"bad bucket name {name!r}: 3-63 lower-case letters, digits, '.', '-'")
        self.client().create_bucket(Bucket=name)
        return name


def aws_env(access_key: str, secret_key: str, region: str) -> dict[str, str]:
    """Environment variables that point a default boto3 credential chain at a server."""
    return {
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_DEFAULT_REGION": region,
    }


def s3_client(
    url: str, access_key: str, secret_key: str, region: str, max_pool_connections: int = 10
) -> Any:
    """A boto3 S3 client for a server on loopback (path-style addressing)."""
    import boto3
    import botocore.config

    return boto3.session.Session(
        aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region
    ).client(
        "s3",
        endpoint_url=url,
        config=botocore.config.Config(
            s3={"addressing_style": "path"}, max_pool_connections=max_pool_connections
        ),
    )


def _terminate(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


def _exit_when_stdin_closes() -> None:
    with contextlib.suppress(OSError):
        while sys.stdin.buffer.read(4096):
            pass
    os._exit(0)


class SignatureCheck:
    """WSGI middleware: refuse requests not signed (SigV4) with the server's credentials.

    The canonical request is rebuilt from what arrived on the wire (the raw request
    target and the headers the client says it signed), as S3 does; the payload hash is
    the ``x-amz-content-sha256`` header the client signed. Presigned URLs (query
    authentication) are checked the same way.
    """

    def __init__(self, app: Any, access_key: str, secret_key: str) -> None:
        self.app = app
        self.access_key = access_key
        self.secret_key = secret_key

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        error = self.check(environ)
        if error is None:
            return self.app(environ, start_response)
        code, message = error
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
        ).encode()
        start_response(
            "403 Forbidden",
            [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
        )
        return [body]

    def check(self, environ: dict[str, Any]) -> tuple[str, str] | None:
        import urllib.parse

        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
        path, _, query = raw.partition("?")
        params = urllib.parse.parse_qs(query, keep_blank_values=True)
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").lower()] = environ[key]
        if "AWSAccessKeyId" in params:
            return self.check_v2_query(environ["REQUEST_METHOD"], path, params)
        if "X-Amz-Signature" in params:
            credential = params.get("X-Amz-Credential", [""])[0]
            signed = params.get("X-Amz-SignedHeaders", [""])[0].split(";")
            signature = params["X-Amz-Signature"][0]
            amz_date = params.get("X-Amz-Date", [""])[0]
            payload = "UNSIGNED-PAYLOAD"
            pairs = [p for p in query.split("&") if not p.startswith("X-Amz-Signature=")]
        else:
            match = re.match(
                r"AWS4-HMAC-SHA256 Credential=([^,]+),\s*SignedHeaders=([^,]+),\s*Signature=(\w+)",
                headers.get("authorization", ""),
            )
            if not match:
                return "AccessDenied", "Anonymous access is forbidden for this operation"
            credential, signed_text, signature = match.groups()
            signed = signed_text.split(";")
            amz_date = headers.get("x-amz-date", "")
            payload = headers.get("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
            pairs = [p for p in query.split("&") if p]
        key_id, _, scope = credential.partition("/")
        if key_id != self.access_key:
            return (
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
            )
        # Sorted by (name, value), as the client sorted them when it signed.
        canonical_query = "&".join(
            f"{name}={value}" for name, value in sorted(p.partition("=")[::2] for p in pairs)
        )
        canonical_headers = "".join(
            f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in signed
        )
        canonical = "\n".join(
            [environ["REQUEST_METHOD"], path, canonical_query, canonical_headers, ";".join(signed),
             payload]
        )  # fmt: skip
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        date, region, service, _ = [*scope.split("/"), "", "", ""][:4]
        key = ("AWS4" + self.secret_key).encode()
        for part in (date, region, service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return (
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. "
                "Check your key and signing method.",
            )
        return None

    def check_v2_query(
        self, method: str, path: str, params: dict[str, list[str]]
    ) -> tuple[str, str] | None:
        """A presigned URL in the older form (``AWSAccessKeyId``, ``Signature``, ``Expires``)."""
        import base64

        if params["AWSAccessKeyId"][0] != self.access_key:
            return (
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
            )
        to_sign = f"{method}\n\n\n{params.get('Expires', [''])[0]}\n{path}"
        expected = base64.b64encode(
            hmac.new(self.secret_key.encode(), to_sign.encode(), hashlib.sha1).digest()
        ).decode()
        if not hmac.compare_digest(expected, params.get("Signature", [""])[0]):
            return (
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="moto's S3 server on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="port to bind (0: a free one)")
    parser.add_argument(
        "--watch-stdin", action="store_true", help="exit when standard input reaches its end"
    )
    args = parser.parse_args(argv)
    if args.watch_stdin:
        threading.Thread(target=_exit_when_stdin_closes, daemon=True).start()

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app: Any = DomainDispatcherApplication(create_backend_app)
    if os.environ.get(_KEY_ENV) and os.environ.get(_SECRET_ENV):
        app = SignatureCheck(app, os.environ[_KEY_ENV], os.environ[_SECRET_ENV])
    server = make_server(HOST, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    # moto builds some URLs (presigned redirects, error resources) from this.
    os.environ["MOTO_PORT"] = str(server.server_port)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print(f"{READY}http://{HOST}:{server.server_port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
