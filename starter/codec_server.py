"""The codec server: lets the Temporal UI (and ``temporal`` CLI) show encrypted payloads decoded.

Implements Temporal's remote codec endpoints, ``POST /encode`` and ``POST /decode``, taking and
giving ``{"payloads": [...]}`` in protobuf JSON. Every request must carry the token
(``JOURNEYS_CODEC_SERVER_TOKEN``), either as ``Authorization: Bearer <token>`` (the ``temporal``
CLI's ``--codec-auth``, a UI that passes an access token) or as the first path segment,
``/<token>/decode`` (a capability URL for a UI without login: give the UI
``http://host:port/<token>`` as its codec endpoint). Only the UI's origins are allowed by CORS.
It listens on 127.0.0.1 by default: it decrypts for whoever holds the token.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Sequence

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

from durable_journeys.activities.codec import CodecKeyError

MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_PAYLOADS = 1000


def codec_app(codec: PayloadCodec, *, token: str, origins: Sequence[str]) -> FastAPI:
    """The codec server's app.

    Args:
        codec: the payload codec (the one the workers and clients use).
        token: what every request must present.
        origins: the Temporal UI's origins (CORS), e.g. ``http://localhost:8233``.
    """
    app = FastAPI(title="Durable Journeys codec server", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=["POST"],
        allow_headers=["Authorization", "Content-Type", "X-Namespace", "Caller-Type"],
        allow_credentials=True,
        max_age=600,
    )
    expected = token.encode()

    def allowed(request: Request, path_token: str | None) -> bool:
        given = path_token
        if given is None:
            scheme, _, value = request.headers.get("authorization", "").partition(" ")
            given = value.strip() if scheme.lower() == "bearer" else ""
        return hmac.compare_digest(given.encode(), expected)

    async def handle(request: Request, operation: str, path_token: str | None) -> Response:
        if not allowed(request, path_token):
            return _problem(401, "missing or wrong codec server token")
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            return _problem(413, f"body over {MAX_BODY_BYTES} bytes")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return _problem(413, f"body over {MAX_BODY_BYTES} bytes")
        payloads = Payloads()
        try:
            json_format.Parse(body, payloads)
        except (json_format.ParseError, UnicodeDecodeError, ValueError):
            return _problem(400, 'body is not {"payloads": [...]} in protobuf JSON')
        if len(payloads.payloads) > MAX_PAYLOADS:
            return _problem(413, f"more than {MAX_PAYLOADS} payloads")
        try:
            if operation == "encode":
                result = await codec.encode(list(payloads.payloads))
            else:
                result = await codec.decode(list(payloads.payloads))
        except CodecKeyError as exc:
            return _problem(400, str(exc))
        out = json_format.MessageToJson(Payloads(payloads=result))
        return Response(out, media_type="application/json")

    @app.post("/encode")
    async def encode(request: Request) -> Response:
        return await handle(request, "encode", None)

    @app.post("/decode")
    async def decode(request: Request) -> Response:
        return await handle(request, "decode", None)

    @app.post("/{path_token}/encode")
    async def encode_with_token(path_token: str, request: Request) -> Response:
        return await handle(request, "encode", path_token)

    @app.post("/{path_token}/decode")
    async def decode_with_token(path_token: str, request: Request) -> Response:
        return await handle(request, "decode", path_token)

    return app


def _problem(status: int, message: str) -> Response:
    return Response(json.dumps({"error": message}), status_code=status, media_type="application/json")
