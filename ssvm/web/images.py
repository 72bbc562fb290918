"""Serving stored images to hosts and users through signed, expiring URLs, with Range support.

`GET /images/<store path>?expires=…&signature=…`. Anything not signed by this appliance, expired,
outside the served folders or not a regular file inside the store is refused; the signature is never
logged.
"""

from __future__ import annotations

import os

from twisted.logger import Logger
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import Request
from twisted.web.static import File

from appliance.web import error_body
from ssvm.urls import UrlError, UrlSigner, check_store_path


class ImageResource(Resource):
    isLeaf = True
    log = Logger()

    def __init__(self, store_root: str, signer: UrlSigner) -> None:
        super().__init__()
        self._root = os.path.realpath(store_root)
        self._signer = signer

    def _refuse(self, request: Request, status: int, code: str, message: str) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"Content-Type", b"application/json")
        return error_body(code, message)

    def render_GET(self, request: Request) -> bytes | int:  # noqa: N802 (Twisted API)
        try:
            path = check_store_path("/".join(s.decode("utf-8") for s in request.postpath or []))
        except (UrlError, UnicodeDecodeError):
            return self._refuse(request, http.NOT_FOUND, "not_found", "no such image")
        args = request.args or {}
        expires = args.get(b"expires", [])
        signature = args.get(b"signature", [])
        if len(expires) != 1 or len(signature) != 1:
            return self._refuse(request, http.FORBIDDEN, "forbidden", "a signed URL is needed")
        try:
            valid = self._signer.verify(path, expires[0].decode("ascii"), signature[0].decode("ascii"))
        except UnicodeDecodeError:
            valid = False
        if not valid:
            self.log.info("refused image request for {path}: bad or expired signature", path=path)
            return self._refuse(request, http.FORBIDDEN, "forbidden", "the URL is not valid or has expired")
        real = os.path.realpath(os.path.join(self._root, path))
        if not real.startswith(self._root + os.sep) or not os.path.isfile(real):
            return self._refuse(request, http.NOT_FOUND, "not_found", "no such image")
        resource = File(real, defaultType="application/octet-stream")
        resource.isLeaf = True
        request.setHeader(b"Cache-Control", b"private, no-store")
        result: bytes | int = resource.render(request)
        return result

    render_HEAD = render_GET  # noqa: N815 (Twisted API)
