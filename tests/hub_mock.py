"""A local stand-in for the few Hugging Face Hub HTTP endpoints that create_repo, upload_folder and
snapshot_download call, serving from memory on 127.0.0.1, so tests push and download without a network.

Every request is recorded in ``requests`` (method, path); an endpoint it does not know answers 404 and is recorded
in ``unknown``, so a test sees when huggingface_hub asks for something new.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


class MockHub:
    """``with MockHub() as hub:`` serves at ``hub.endpoint``; ``hub.repos[repo_id]`` is {path: bytes}."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.commits: dict[str, str] = {}
        self.requests: list[tuple[str, str]] = []
        self.unknown: list[tuple[str, str]] = []
        self.validated: list[dict] = []  # the README.md metadata blocks validated before uploads
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                hub.handle(self, "GET")

            def do_HEAD(self):
                hub.handle(self, "HEAD")

            def do_POST(self):
                hub.handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "MockHub":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # Responses ---------------------------------------------------------------------------------------------------
    @staticmethod
    def reply(handler, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
        handler.send_response(status)
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if not head:
            handler.wfile.write(body)

    def json(self, handler, value, status: int = 200) -> None:
        self.reply(handler, status, json.dumps(value).encode(), {"Content-Type": "application/json"})

    def not_found(self, handler, code: str = "RepoNotFound", head: bool = False) -> None:
        self.reply(handler, 404, b'{"error": "not found"}', {"X-Error-Code": code, "X-Error-Message": code,
                                                           "Content-Type": "application/json"}, head)

    def handle(self, handler, method: str) -> None:
        url = urlsplit(handler.path)
        path = unquote(url.path)
        self.requests.append((method, path))
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        repo = r"(?P<repo>[^/]+/[^/]+)"
        if path == "/api/agent-harnesses":  # huggingface_hub's registry of agent harnesses: none here (404, so
            return self.not_found(handler, "EntryNotFound", head=method == "HEAD")  # it caches nothing on disk)
        if method == "POST" and path == "/api/repos/create":
            data = json.loads(body)
            repo_id = f"{data['organization']}/{data['name']}" if data.get("organization") else data["name"]
            self.repos.setdefault(repo_id, {})
            self.commits.setdefault(repo_id, hashlib.sha1(repo_id.encode()).hexdigest())
            return self.json(handler, {"url": f"{self.endpoint}/{repo_id}", "name": repo_id})
        if path == "/api/validate-yaml" and method == "POST":  # a README.md's metadata, checked before upload
            import yaml

            content = json.loads(body)["content"]
            front = re.match(r"---\n(.*?)\n---\n", content, re.S)
            metadata = yaml.safe_load(front.group(1)) if front else None
            if not isinstance(metadata, dict):
                return self.json(handler, {"errors": [{"message": "no YAML metadata block"}]}, 400)
            self.validated.append(metadata)
            return self.json(handler, {"errors": [], "warnings": []})
        if (m := re.fullmatch(rf"/api/models/{repo}/preupload/(?P<rev>[^/]+)", path)) and method == "POST":
            files = json.loads(body)["files"]
            return self.json(handler, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                 for f in files]})
        if (m := re.fullmatch(rf"/api/models/{repo}/commit/(?P<rev>[^/]+)", path)) and method == "POST":
            files = self.repos.setdefault(m["repo"], {})
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            digest = hashlib.sha1(b"".join(files[p] for p in sorted(files)) + m["repo"].encode()).hexdigest()
            self.commits[m["repo"]] = digest
            return self.json(handler, {"commitUrl": f"{self.endpoint}/{m['repo']}/commit/{digest}",
                                       "commitOid": digest, "commitMessage": "ok", "pullRequestUrl": None})
        if m := re.fullmatch(rf"/api/models/{repo}/revision/(?P<rev>.+)", path):
            if m["repo"] not in self.repos:
                return self.not_found(handler)
            return self.json(handler, {"id": m["repo"], "modelId": m["repo"], "sha": self.commits[m["repo"]],
                                       "private": False,
                                       "siblings": [{"rfilename": p} for p in sorted(self.repos[m["repo"]])]})
        if m := re.fullmatch(rf"/api/models/{repo}/tree/(?P<rev>[^/]+)(/.*)?", path):
            if m["repo"] not in self.repos:
                return self.not_found(handler)
            return self.json(handler, [{"type": "file", "path": p, "size": len(data),
                                        "oid": hashlib.sha1(data).hexdigest()}
                                       for p, data in sorted(self.repos[m["repo"]].items())])
        if m := re.fullmatch(rf"/{repo}/resolve/(?P<rev>[^/]+)/(?P<file>.+)", path):
            files = self.repos.get(m["repo"])
            if files is None:
                return self.not_found(handler, head=method == "HEAD")
            if m["file"] not in files:
                return self.not_found(handler, "EntryNotFound", head=method == "HEAD")
            data = files[m["file"]]
            return self.reply(handler, 200, data, {"X-Repo-Commit": self.commits[m["repo"]],
                                                   "ETag": f'"{hashlib.sha1(data).hexdigest()}"',
                                                   "Content-Type": "application/octet-stream"}, method == "HEAD")
        self.unknown.append((method, path))
        return self.not_found(handler, "Unknown", head=method == "HEAD")
