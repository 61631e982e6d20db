"""A hub-like HTTP server on 127.0.0.1 that speaks enough of the Hugging Face Hub's file API
for huggingface_hub to do its real download, caching and resuming against it.

    GET  /api/models/<repo>/revision/<rev>       model info: sha and siblings
    GET  /api/models/<repo>/tree/<rev>            file listing
    HEAD /<repo>/resolve/<rev>/<path>             X-Repo-Commit, ETag, Content-Length
    GET  /<repo>/resolve/<rev>/<path>             the bytes, with Range support

Errors are 404s with the X-Error-Code the Hub sends (RepoNotFound, RevisionNotFound,
EntryNotFound). Every request is logged, so tests can see what crossed the wire.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".onnx")


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-body (the tests of stalled downloads do) is expected: the
    default handler prints a traceback to stderr, where a later CLI test would find it."""

    def handle_error(self, request, client_address) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)

    def add_commit(self, files: dict[str, bytes], *, refs: tuple[str, ...] = ("main",)) -> str:
        digest = hashlib.sha1()
        for name in sorted(files):
            digest.update(name.encode() + hashlib.sha256(files[name]).digest())
        sha = digest.hexdigest()
        self.commits[sha] = dict(files)
        for ref in refs:
            self.refs[ref] = sha
        return sha

    def commit_of(self, revision: str) -> str | None:
        if revision in self.commits:
            return revision
        return self.refs.get(revision)


def folder_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


class HubServer:
    """Start with `with HubServer() as hub:`; hub.endpoint is the HF_ENDPOINT to use."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.cut: dict[str, int] = {}  # file name -> how many more GETs to cut off halfway
        # A server that lies or stalls: "commit" and "etag" replace those headers of file
        # answers, "info" the body of the model listing; "stall" waits that many seconds
        # before answering, "drip" sends bodies a byte at a time, that many seconds apart;
        # "head_size" (file name -> bytes) is the size a HEAD answer claims for a file;
        # "unserved" names files the listing names and the server answers with 404.
        self.lies: dict[str, object] = {}
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add_repo(self, repo_id: str, files: dict[str, bytes], **kwargs) -> str:
        repo = self.repos.setdefault(repo_id, Repo())
        return repo.add_commit(files, **kwargs)

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_HEAD(self) -> None:
                self._route(head=True)

            def do_GET(self) -> None:
                self._route(head=False)

            def _route(self, head: bool) -> None:
                path = urlsplit(self.path).path
                hub.requests.append((self.command, path))
                if "stall" in hub.lies:
                    time.sleep(float(hub.lies["stall"]))  # type: ignore[arg-type]
                api = re.match(r"^/api/models/([^/]+/[^/]+)/(revision|tree)/([^/]+)(?:/.*)?$", path)
                if api:
                    return self._api(api.group(1), api.group(2), unquote(api.group(3)))
                resolve = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
                if resolve:
                    return self._file(
                        resolve.group(1), unquote(resolve.group(2)), unquote(resolve.group(3)), head
                    )
                self._error(404, "RepoNotFound", "not found")

            def _lookup(self, repo_id: str, revision: str):
                repo = hub.repos.get(repo_id)
                if repo is None:
                    self._error(401, "RepoNotFound", "Repository not found")
                    return None, None
                sha = repo.commit_of(revision)
                if sha is None:
                    self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", sha=None)
                    return None, None
                return repo, sha

            def _api(self, repo_id: str, kind: str, revision: str) -> None:
                repo, sha = self._lookup(repo_id, revision)
                if repo is None:
                    return
                files = repo.commits[sha]
                if kind == "revision":
                    body = {
                        "id": repo_id,
                        "modelId": repo_id,
                        "sha": sha,
                        "private": False,
                        "siblings": [{"rfilename": name} for name in sorted(files)],
                    }
                else:
                    body = [_tree_entry(name, data) for name, data in sorted(files.items())]
                raw = json.dumps(body).encode()
                if kind == "revision" and "info" in hub.lies:
                    raw = hub.lies["info"]  # type: ignore[assignment]
                self._send(200, raw, {"Content-Type": "application/json"})

            def _file(self, repo_id: str, revision: str, name: str, head: bool) -> None:
                repo, sha = self._lookup(repo_id, revision)
                if repo is None:
                    return
                files = repo.commits[sha]
                if name not in files or name in hub.lies.get("unserved", ()):  # type: ignore[operator]
                    return self._error(404, "EntryNotFound", f"{name} does not exist", sha=sha)
                data = files[name]
                headers = {
                    "X-Repo-Commit": str(hub.lies.get("commit", sha)),
                    "ETag": f'"{hub.lies.get("etag", _etag(name, data))}"',
                    "Accept-Ranges": "bytes",
                }
                status, body = 200, data
                ranged = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range", ""))
                if ranged and not head:
                    start = int(ranged.group(1))
                    end = int(ranged.group(2)) if ranged.group(2) else len(data) - 1
                    status, body = 206, data[start : end + 1]
                    headers["Content-Range"] = f"bytes {start}-{start + len(body) - 1}/{len(data)}"
                headers["Content-Length"] = str(len(body))
                if head and name in hub.lies.get("head_size", {}):  # type: ignore[operator]
                    headers["Content-Length"] = str(hub.lies["head_size"][name])  # type: ignore[index]
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if head:
                    return
                if hub.cut.get(name, 0) > 0 and len(body) > 1:
                    # The connection drops halfway through, as a flaky network does.
                    hub.cut[name] -= 1
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self._write(body)

            def _write(self, body: bytes) -> None:
                if "drip" not in hub.lies:
                    self.wfile.write(body)
                    return
                for i in range(len(body)):
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                    time.sleep(float(hub.lies["drip"]))  # type: ignore[arg-type]

            def _error(self, status: int, code: str, message: str, sha: str | None = None) -> None:
                headers = {
                    "X-Error-Code": code,
                    "X-Error-Message": message,
                    "Content-Type": "application/json",
                }
                if sha:
                    headers["X-Repo-Commit"] = sha
                self._send(status, json.dumps({"error": message}).encode(), headers)

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self._write(body)

        return Handler


def _etag(name: str, data: bytes) -> str:
    """The Hub's ETag: sha256 for LFS files, the git blob sha1 for the rest."""
    if name.endswith(LFS_SUFFIXES):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _tree_entry(name: str, data: bytes) -> dict:
    entry = {"type": "file", "path": name, "size": len(data), "oid": _etag(name, data)}
    if name.endswith(LFS_SUFFIXES):
        entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data)}
    return entry
