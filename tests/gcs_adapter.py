"""A thin HTTP front for fake-gcs-server that adds the XML API's single-request upload.

Real GCS accepts ``PUT /{bucket}/{object}`` (its XML API, which obstore uses for writes,
with ``x-goog-if-generation-match: 0`` for create-if-absent). The bundled fake-gcs-server
serves the XML API's reads but answers that upload with "invalid uploadType". This front
passes every request through unchanged, except that upload, which it re-sends as the
server's JSON multipart upload carrying the same precondition (``ifGenerationMatch``), so
the server itself decides who wins a create race. Test infrastructure only.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class GcsXmlPutAdapter:
    """Serve on ``host:port`` and forward to fake-gcs-server on ``host:backend_port``."""

    def __init__(self, host: str, port: int, backend_port: int) -> None:
        self.host, self.port, self.backend_port = host, port, backend_port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> GcsXmlPutAdapter:
        adapter = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: with Nagle's algorithm on, each
            # reply then waits for the client's delayed ACK (~40 ms a request).
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                adapter._forward(self)

            do_HEAD = do_DELETE = do_POST = do_PATCH = do_GET

            def do_PUT(self) -> None:
                path = urllib.parse.urlsplit(self.path)
                parts = path.path.lstrip("/").split("/", 1)
                if path.query or len(parts) != 2 or not parts[1]:
                    adapter._forward(self)
                else:
                    bucket, name = parts[0], urllib.parse.unquote(parts[1])
                    adapter._upload(self, bucket, name)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _body(self, handler: BaseHTTPRequestHandler) -> bytes:
        length = int(handler.headers.get("Content-Length") or 0)
        return handler.rfile.read(length) if length else b""

    def _send(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self.host, self.backend_port, timeout=120)
        try:
            headers = {**headers, "Host": f"{self.host}:{self.backend_port}"}
            conn.request(
                method, path, body=body if body or method != "GET" else None, headers=headers
            )
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def _reply(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> None:
        handler.send_response(status)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                handler.send_header(name, value)
        if handler.command == "HEAD":
            length = next((v for k, v in headers if k.lower() == "content-length"), "0")
            handler.send_header("Content-Length", length)
        else:
            handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)

    def _forward(self, handler: BaseHTTPRequestHandler) -> None:
        body = self._body(handler)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
        status, reply_headers, reply = self._send(handler.command, handler.path, body, headers)
        self._reply(handler, status, reply_headers, reply)

    def _upload(self, handler: BaseHTTPRequestHandler, bucket: str, name: str) -> None:
        data = self._body(handler)
        query = {"uploadType": "multipart", "name": name}
        generation = handler.headers.get("x-goog-if-generation-match")
        if generation is not None:
            query["ifGenerationMatch"] = generation
        boundary = uuid.uuid4().hex
        content_type = handler.headers.get("Content-Type") or "application/octet-stream"
        meta = json.dumps({"name": name, "contentType": content_type}).encode()
        body = b"".join(
            [
                f"--{boundary}\r\nContent-Type: application/json\r\n\r\n".encode(),
                meta,
                f"\r\n--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode(),
                data,
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        path = f"/upload/storage/v1/b/{bucket}/o?" + urllib.parse.urlencode(query)
        headers = {"Content-Type": f"multipart/related; boundary={boundary}"}
        status, _, reply = self._send("POST", path, body, headers)
        if status != 200:
            self._reply(handler, status, [("Content-Type", "application/xml")], reply)
            return
        obj = json.loads(reply)
        self._reply(
            handler,
            200,
            [("ETag", f'"{obj.get("etag", "")}"'), ("x-goog-generation", str(obj["generation"]))],
            b"",
        )
