"""A local server for the part of the Hugging Face Hub's HTTP API that downloads use.

The Hub itself cannot be reached from the tests, so huggingface_hub (the real client,
pointed here by HF_ENDPOINT) talks to this: refs, revision info, the tree listing,
and HEAD/GET of `resolve/<commit>/<path>` with the Hub's headers (X-Repo-Commit,
ETag, X-Linked-Etag/Size for LFS files). It serves one dataset folder as one
commit, tagged v3.0 and on main, and records every file it sends, so a test can
tell what was downloaded when.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tests.helpers.hub_cache import COMMIT, LFS_SUFFIXES, blob_name, git_blob_id


class FakeHub:
    def __init__(self, repo_id: str, folder: Path, commit: str = COMMIT, refs: tuple[str, ...] = ("v3.0",)):
        self.repo_id, self.commit, self.refs = repo_id, commit, refs
        self.files = {
            p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
        }
        self.sent: list[str] = []  # paths whose content was served (GET), in order
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                hub._answer(self, body=False)

            def do_GET(self) -> None:
                hub._answer(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _tree(self) -> list[dict]:
        entries = []
        for rel, data in self.files.items():
            entry = {"type": "file", "path": rel, "size": len(data), "oid": git_blob_id(data)}
            if rel.endswith(LFS_SUFFIXES):
                entry["lfs"] = {"oid": blob_name(rel, data), "size": len(data), "pointerSize": 134}
            entries.append(entry)
        return entries

    def _answer(self, req: BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(urlsplit(req.path).path)
        api = f"/api/datasets/{self.repo_id}"
        if path == f"{api}/refs":
            ref = {"targetCommit": self.commit}
            return self._json(req, body, {
                "branches": [{"name": "main", "ref": "refs/heads/main", **ref}],
                "tags": [{"name": r, "ref": f"refs/tags/{r}", **ref} for r in self.refs if r != "main"],
                "converts": [],
            })  # fmt: skip
        if path.startswith(f"{api}/revision/"):
            revision = path.removeprefix(f"{api}/revision/")
            if revision not in (self.commit, "main", *self.refs):
                return self._error(req, 404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return self._json(req, body, {"id": self.repo_id, "sha": self.commit, "private": False})
        if path.startswith(f"{api}/tree/{self.commit}"):
            return self._json(req, body, self._tree())
        prefix = f"/datasets/{self.repo_id}/resolve/{self.commit}/"
        if path.startswith(prefix):
            rel = path.removeprefix(prefix)
            data = self.files.get(rel)
            if data is None:
                return self._error(req, 404, "EntryNotFound", f"{rel} does not exist")
            req.send_response(200)
            req.send_header("X-Repo-Commit", self.commit)
            req.send_header("ETag", f'"{blob_name(rel, data)}"')
            if rel.endswith(LFS_SUFFIXES):
                req.send_header("X-Linked-Etag", f'"{blob_name(rel, data)}"')
                req.send_header("X-Linked-Size", str(len(data)))
            req.send_header("Content-Length", str(len(data)))
            req.end_headers()
            if body:
                self.sent.append(rel)
                req.wfile.write(data)
            return None
        return self._error(req, 404, "RepoNotFound", f"no route {path}")

    @staticmethod
    def _json(req: BaseHTTPRequestHandler, body: bool, value: object) -> None:
        data = json.dumps(value).encode()
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        if body:
            req.wfile.write(data)

    @staticmethod
    def _error(req: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
        data = json.dumps({"error": message}).encode()
        req.send_response(status)
        req.send_header("X-Error-Code", code)
        req.send_header("X-Error-Message", message)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)
