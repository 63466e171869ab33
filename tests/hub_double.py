"""A loopback test double of the Hugging Face Hub, spoken to by the real huggingface_hub client.

huggingface.co is unreachable from our machines, and mocking the client would test our
assumptions about it rather than the client itself. This server implements just enough of
the Hub's HTTP protocol (as used by huggingface_hub 2.4) for ``create_repo``,
``upload_folder``, ``hf_hub_download``, ``snapshot_download``, refs/branches/tags and
``list_repo_*`` to run unchanged against ``http://127.0.0.1:PORT``.

Protocol facts it relies on (read from the 2.4 client source):

* Every file is answered ``uploadMode: "regular"`` by ``preupload``, so the client sends
  base64 content inline in the NDJSON commit and never touches LFS or Xet.
* ``preupload`` must also answer ``shouldIgnore`` and the remote blob ``oid`` (git sha1):
  the client drops unchanged files by comparing that oid with its own git hash.
* ``snapshot_download`` resolves a branch with ``GET /api/models/{repo}/revision/{rev}``
  (``sha``), lists files with ``GET /api/models/{repo}/tree/{sha}?recursive=True``, then
  ``HEAD``/``GET /{repo}/resolve/{sha}/{path}`` per file; the HEAD answer must carry
  ``X-Repo-Commit``, a quoted ``ETag`` and ``Content-Length``.
* Errors are typed by the ``X-Error-Code`` header (``RepoNotFound``, ``RevisionNotFound``,
  ``EntryNotFound``); the message comes from ``X-Error-Message`` / JSON ``error``.

Fault injection (``fail_next``, ``down``/``up``) lets reliability tests see what users see
when the Hub answers 5xx or cannot be reached at all.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_USER = "smapgan-tester"
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
# Words that follow a repo id in API paths; a one-segment repo id is detected by them.
_API_SUBROUTES = {
    "revision", "tree", "refs", "commits", "paths-info", "preupload", "commit", "branch", "tag", "resolve",
}
# Requests the client makes for itself (not for the user's operation): never fault-injected.
_HOUSEKEEPING = re.compile(r"^/api/(agent-harnesses|telemetry/)")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


def git_blob_sha1(data: bytes) -> str:
    """Git's blob id: the Hub's ETag and ``oid`` for a regular (non-LFS) file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now_iso() -> str:
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


@dataclass
class Commit:
    """One immutable snapshot of a repo: every file's bytes, plus history links."""

    oid: str
    parent: str | None
    files: dict[str, bytes]
    title: str
    message: str
    date: str


@dataclass
class Repo:
    """A repo on the double: branches and tags point into ``commits``."""

    repo_id: str
    repo_type: str
    private: bool
    created_at: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    sdk: str | None = None

    def resolve(self, revision: str) -> Commit | None:
        """A branch, a tag, a full commit id, or an unambiguous commit prefix (>= 7 chars)."""
        if revision in self.branches:
            return self.commits[self.branches[revision]]
        if revision in self.tags:
            return self.commits[self.tags[revision]]
        if revision in self.commits:
            return self.commits[revision]
        if len(revision) >= 7 and re.fullmatch(r"[0-9a-f]+", revision):
            hits = [c for oid, c in self.commits.items() if oid.startswith(revision)]
            if len(hits) == 1:
                return hits[0]
        return None


class HttpError(Exception):
    """An HTTP error answer, raised inside a handler and turned into a response."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


class HubDouble:
    """The server, its repos and its fault switches. Use as a context manager or start()/stop().

    ``requests`` records ``(method, path)`` of every request received (query stripped), so a
    test can assert that e.g. an offline load never touched the network.
    """

    def __init__(self, token: str | None = "hf_smapgan_test_token", user: str = DEFAULT_USER):
        self.token = token
        self.user = user
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.RLock()
        self._faults: list[dict[str, Any]] = []
        self._commit_counter = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._port = 0
        self._is_down = True
        self.cache_dir = None  # set by the `hub` fixture: the client's HF_HUB_CACHE

    # ----------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        """The endpoint to give the client (``constants.ENDPOINT``)."""
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> "HubDouble":
        """Bind 127.0.0.1 on a free port (or the previous one after ``down()``) and serve."""
        double = self

        class Handler(_Handler):
            hub = double

        server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        server.daemon_threads = True
        self._port = server.server_address[1]
        self._server = server
        self._is_down = False
        # A short poll keeps down()/stop() (which wait for one poll) from slowing every test.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="hub-double", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop every open connection."""
        self._is_down = True
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            conns, self._connections = list(self._connections), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def down(self) -> None:
        """Make the endpoint unreachable: new connections are refused, kept-alive ones closed."""
        self.stop()

    def up(self) -> None:
        """Serve again on the same port, with the same repos."""
        if self._server is None:
            self.start()

    def __enter__(self) -> "HubDouble":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ fault injection
    def fail_next(self, status: int = 500, count: int = 1, match: str | None = None) -> None:
        """Answer the next ``count`` requests (whose ``"METHOD /path"`` contains ``match``, if given)
        with ``status``. Housekeeping calls the client makes on its own are never failed."""
        with self._lock:
            self._faults.append({"status": status, "count": count, "match": match})

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, path: str) -> int | None:
        if _HOUSEKEEPING.match(path):
            return None
        with self._lock:
            for fault in self._faults:
                if fault["match"] is None or fault["match"] in f"{method} {path}":
                    fault["count"] -= 1
                    if fault["count"] <= 0:
                        self._faults.remove(fault)
                    return fault["status"]
        return None

    # ------------------------------------------------------------- direct access
    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        """The stored repo, for assertions on the server side."""
        return self.repos[(repo_type, repo_id)]

    def head(self, repo_id: str, repo_type: str = "model", branch: str = "main") -> str:
        """Commit id the branch points to."""
        return self.repo(repo_id, repo_type).branches[branch]

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        """Every file's bytes at a revision."""
        commit = self.repo(repo_id, repo_type).resolve(revision)
        if commit is None:
            raise KeyError(revision)
        return dict(commit.files)

    # ------------------------------------------------------------ state changes
    def create_repo(
        self, repo_id: str, repo_type: str = "model", private: bool = False, sdk: str | None = None
    ) -> Repo:
        """Create with an initial commit holding ``.gitattributes``, as the real Hub does."""
        with self._lock:
            key = (repo_type, repo_id)
            if key in self.repos:
                raise HttpError(409, f"You already created this {repo_type} repo")
            repo = Repo(repo_id=repo_id, repo_type=repo_type, private=private, created_at=_now_iso(), sdk=sdk)
            self.repos[key] = repo
            self._add_commit(repo, "main", {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"},
                             title="initial commit", message="")
            return repo

    def _add_commit(self, repo: Repo, branch: str, files: dict[str, bytes], title: str, message: str) -> Commit:
        with self._lock:
            self._commit_counter += 1
            parent = repo.branches.get(branch)
            digest = hashlib.sha1()
            digest.update(f"{repo.repo_type}/{repo.repo_id}\n{parent}\n{title}\n{self._commit_counter}\n".encode())
            for path in sorted(files):
                digest.update(f"{path}\0{git_blob_sha1(files[path])}\n".encode())
            commit = Commit(digest.hexdigest(), parent, dict(files), title, message, _now_iso())
            repo.commits[commit.oid] = commit
            repo.branches[branch] = commit.oid
            return commit

    def _url_for(self, repo: Repo) -> str:
        return f"{self.url}/{URL_PREFIX[repo.repo_type]}{repo.repo_id}"


def _tree_entries(files: dict[str, bytes], base: str, recursive: bool) -> list[dict[str, Any]]:
    """Tree listing under ``base`` in the Hub's JSON shape (files and directories)."""
    prefix = base.strip("/") + "/" if base.strip("/") else ""
    dirs: dict[str, None] = {}
    out: list[dict[str, Any]] = []
    for path in sorted(files):
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix):].split("/")
        for depth in range(1, len(rest)):
            if depth > 1 and not recursive:
                break
            dirs[prefix + "/".join(rest[:depth])] = None
        if len(rest) == 1 or recursive:
            data = files[path]
            out.append({"type": "file", "oid": git_blob_sha1(data), "size": len(data), "path": path})
    for d in dirs:
        oid = hashlib.sha1(("tree " + d).encode()).hexdigest()
        out.append({"type": "directory", "oid": oid, "size": 0, "path": d})
    return out


class _Handler(BaseHTTPRequestHandler):
    """Routes one request; ``hub`` is bound by ``HubDouble.start``."""

    hub: HubDouble
    protocol_version = "HTTP/1.1"  # keep-alive, as the real Hub; every answer carries Content-Length

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the stdlib access log: pytest output is for failures."""

    def setup(self) -> None:
        super().setup()
        with self.hub._lock:
            self.hub._connections.add(self.connection)

    def finish(self) -> None:
        with self.hub._lock:
            self.hub._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    # ---------------------------------------------------------------- plumbing
    def _dispatch(self, method: str) -> None:
        hub = self.hub
        if hub._is_down:  # a request raced with down(): behave like a dead peer
            self.close_connection = True
            return
        split = urlsplit(self.path)
        self._query = parse_qs(split.query)
        raw_path = split.path
        with hub._lock:
            hub.requests.append((method, raw_path))
        body = self._read_body()
        status = hub._take_fault(method, raw_path)
        try:
            if status is not None:
                raise HttpError(status, f"Injected failure ({status}) by the Hub test double")
            self._route(method, raw_path, body)
        except HttpError as err:
            self._send_error(err)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", content_type: str = "application/json",
              headers: dict[str, str] | None = None, head_only: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head_only and body:
            self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        # No body for HEAD (huggingface_hub's telemetry is a HEAD): a body there would be read as the
        # start of the next response on the kept-alive connection ("illegal status line: b'{}HTTP/1.1'").
        self._send(status, json.dumps(payload).encode(), headers=headers, head_only=self.command == "HEAD")

    def _send_error(self, err: HttpError) -> None:
        headers = {"X-Error-Message": err.message, **err.headers}
        if err.code:
            headers["X-Error-Code"] = err.code
        self._send(err.status, json.dumps({"error": err.message}).encode(), headers=headers,
                   head_only=self.command == "HEAD")

    # ------------------------------------------------------------------- auth
    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None

    def _require_write(self) -> None:
        token = self._token()
        if token is None:
            raise HttpError(401, "You must be authenticated to access this endpoint")
        self._check_token(token)

    def _check_token(self, token: str | None) -> None:
        if token is not None and self.hub.token is not None and token != self.hub.token:
            raise HttpError(401, "Invalid credentials in Authorization header")

    def _get_repo(self, repo_type: str, repo_id: str) -> Repo:
        self._check_token(self._token())
        repo = self.hub.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and self._token() is None):
            raise HttpError(404, "Repository not found", code="RepoNotFound")
        return repo

    def _get_commit(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HttpError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        return commit

    # ------------------------------------------------------------------ routes
    def _route(self, method: str, raw_path: str, body: bytes) -> None:
        segs = [unquote(s) for s in raw_path.strip("/").split("/")] if raw_path.strip("/") else []
        if segs[:1] == ["api"]:
            return self._route_api(method, segs[1:], body)
        if method in ("GET", "HEAD"):
            repo_type = "model"
            if segs and segs[0] in ("datasets", "spaces"):
                repo_type, segs = REPO_TYPES[segs[0]], segs[1:]
            if "resolve" in segs:
                i = segs.index("resolve")
                if 1 <= i <= 2 and len(segs) >= i + 3:
                    return self._resolve(method, repo_type, "/".join(segs[:i]), segs[i + 1], "/".join(segs[i + 2:]))
        raise HttpError(404, f"Not found: {method} {raw_path}")

    def _route_api(self, method: str, segs: list[str], body: bytes) -> None:
        hub = self.hub
        if segs == ["agent-harnesses"] and method == "GET":
            return self._json(200, {"standardEnvVars": [], "harnesses": {}})
        if segs[:1] == ["telemetry"]:
            return self._json(200, {})
        if segs == ["whoami-v2"] and method == "GET":
            self._require_write()
            return self._json(200, {"type": "user", "name": hub.user, "fullname": hub.user, "orgs": [],
                                    "auth": {"type": "access_token",
                                             "accessToken": {"displayName": "test", "role": "write"}}})
        if segs == ["repos", "create"] and method == "POST":
            return self._create_repo(json.loads(body or b"{}"))
        if segs == ["repos", "delete"] and method in ("POST", "DELETE"):
            return self._delete_repo(json.loads(body or b"{}"))
        if segs == ["validate-yaml"] and method == "POST":
            return self._validate_yaml(json.loads(body or b"{}"))
        if len(segs) >= 2 and segs[0] in REPO_TYPES:
            repo_type, rest = REPO_TYPES[segs[0]], segs[1:]
            if len(rest) >= 2 and rest[1] not in _API_SUBROUTES:
                repo_id, rest = f"{rest[0]}/{rest[1]}", rest[2:]
            else:
                repo_id, rest = rest[0], rest[1:]
            return self._route_repo(method, repo_type, repo_id, rest, body)
        raise HttpError(404, f"Not found: {method} /api/{'/'.join(segs)}")

    def _route_repo(self, method: str, repo_type: str, repo_id: str, rest: list[str], body: bytes) -> None:
        head = rest[0] if rest else None
        if method == "GET" and head is None:
            return self._info(repo_type, repo_id, "main")
        if method == "GET" and head == "revision" and len(rest) == 2:
            return self._info(repo_type, repo_id, rest[1])
        if method == "GET" and head == "tree" and len(rest) >= 2:
            return self._tree(repo_type, repo_id, rest[1], "/".join(rest[2:]))
        if method == "GET" and head == "refs":
            return self._refs(repo_type, repo_id)
        if method == "GET" and head == "commits" and len(rest) == 2:
            return self._commits(repo_type, repo_id, rest[1])
        if method == "POST" and head == "paths-info" and len(rest) == 2:
            return self._paths_info(repo_type, repo_id, rest[1], body)
        if method == "POST" and head == "preupload" and len(rest) == 2:
            return self._preupload(repo_type, repo_id, rest[1], json.loads(body or b"{}"))
        if method == "POST" and head == "commit" and len(rest) == 2:
            return self._commit(repo_type, repo_id, rest[1], body)
        if head == "branch" and len(rest) == 2 and method in ("POST", "DELETE"):
            return self._branch(method, repo_type, repo_id, rest[1], json.loads(body or b"{}"))
        if head == "tag" and len(rest) == 2 and method in ("POST", "DELETE"):
            return self._tag(method, repo_type, repo_id, rest[1], json.loads(body or b"{}"))
        raise HttpError(404, f"Not found: {method} {self.path}")

    # ---------------------------------------------------------------- handlers
    def _create_repo(self, payload: dict) -> None:
        self._require_write()
        name, org = payload.get("name"), payload.get("organization")
        repo_type = payload.get("type") or "model"
        if not name or repo_type not in URL_PREFIX:
            raise HttpError(400, f"Invalid repo name or type: {name!r} {repo_type!r}")
        if repo_type == "space" and not payload.get("sdk"):
            raise HttpError(400, "A Space needs an sdk")
        repo_id = f"{org or self.hub.user}/{name}"
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        try:
            repo = self.hub.create_repo(repo_id, repo_type, private=private, sdk=payload.get("sdk"))
        except HttpError as err:
            existing = self.hub.repos[(repo_type, repo_id)]
            self._send(409, json.dumps({"error": err.message, "url": self.hub._url_for(existing)}).encode(),
                       headers={"X-Error-Message": err.message})
            return
        self._json(200, {"url": self.hub._url_for(repo), "name": repo_id, "id": repo_id})

    def _delete_repo(self, payload: dict) -> None:
        self._require_write()
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or self.hub.user}/{payload.get('name')}"
        with self.hub._lock:
            if self.hub.repos.pop((repo_type, repo_id), None) is None:
                raise HttpError(404, "Repository not found", code="RepoNotFound")
        self._json(200, {})

    def _validate_yaml(self, payload: dict) -> None:
        content = payload.get("content", "")
        if content.startswith("---") and not re.search(r"^---\s*$", content[3:], flags=re.M):
            return self._json(400, {"errors": [{"message": "metadata block is not closed by '---'"}],
                                    "warnings": []}, headers={"X-Error-Message": "Invalid metadata"})
        self._json(200, {"errors": [], "warnings": []})

    def _info(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self._get_repo(repo_type, repo_id)
        commit = self._get_commit(repo, revision)
        siblings: list[dict[str, Any]] = []
        for path in sorted(commit.files):
            entry: dict[str, Any] = {"rfilename": path}
            if self._query.get("blobs", ["false"])[0].lower() in ("1", "true"):
                entry.update(size=len(commit.files[path]), blobId=git_blob_sha1(commit.files[path]))
            siblings.append(entry)
        info: dict[str, Any] = {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id,
            "author": repo_id.split("/")[0], "sha": commit.oid, "lastModified": commit.date,
            "createdAt": repo.created_at, "private": repo.private, "disabled": False, "gated": False,
            "downloads": 0, "likes": 0, "tags": [], "siblings": siblings,
        }
        if repo_type == "model":
            info["modelId"] = repo_id
        if repo_type == "space":
            info.update(sdk=repo.sdk, runtime={"stage": "RUNNING", "hardware": {"current": None, "requested": None}})
        self._json(200, info)

    def _tree(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        repo = self._get_repo(repo_type, repo_id)
        commit = self._get_commit(repo, revision)
        recursive = self._query.get("recursive", ["false"])[0].lower() in ("1", "true")
        entries = _tree_entries(commit.files, path, recursive)
        if path and not entries:
            raise HttpError(404, f"Entry not found: {path}", code="EntryNotFound")
        self._json(200, entries)

    def _refs(self, repo_type: str, repo_id: str) -> None:
        repo = self._get_repo(repo_type, repo_id)
        def ref(kind: str, name: str, oid: str) -> dict[str, str]:
            return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": oid}
        self._json(200, {
            "branches": [ref("heads", n, o) for n, o in sorted(repo.branches.items())],
            "tags": [ref("tags", n, o) for n, o in sorted(repo.tags.items())],
            "converts": [], "pullRequests": [],
        })

    def _commits(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self._get_repo(repo_type, repo_id)
        commit: Commit | None = self._get_commit(repo, revision)
        out = []
        while commit is not None:
            out.append({"id": commit.oid, "title": commit.title, "message": commit.message,
                        "authors": [{"user": self.hub.user}], "date": commit.date})
            commit = repo.commits.get(commit.parent) if commit.parent else None
        self._json(200, out)

    def _paths_info(self, repo_type: str, repo_id: str, revision: str, body: bytes) -> None:
        repo = self._get_repo(repo_type, repo_id)
        commit = self._get_commit(repo, revision)
        form = parse_qs(body.decode())
        wanted = form.get("paths", [])
        listing = {e["path"]: e for e in _tree_entries(commit.files, "", recursive=True)}
        self._json(200, [listing[p] for p in wanted if p in listing])

    def _preupload(self, repo_type: str, repo_id: str, revision: str, payload: dict) -> None:
        self._require_write()
        repo = self._get_repo(repo_type, repo_id)
        commit = self._get_commit(repo, revision)
        files = []
        for item in payload.get("files", []):
            path = item["path"]
            existing = commit.files.get(path)
            files.append({"path": path, "uploadMode": "regular", "shouldIgnore": False,
                          "oid": git_blob_sha1(existing) if existing is not None else None})
        self._json(200, {"files": files, "commitOid": commit.oid})

    def _commit(self, repo_type: str, repo_id: str, revision: str, body: bytes) -> None:
        self._require_write()
        repo = self._get_repo(repo_type, repo_id)
        if self._query.get("create_pr"):
            raise HttpError(400, "create_pr is not supported by the Hub test double")
        if revision not in repo.branches:
            raise HttpError(404, f"Invalid rev id: {revision} (commits go to a branch)", code="RevisionNotFound")
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HttpError(400, "The first NDJSON line of a commit must be its header")
        header = lines[0]["value"]
        with self.hub._lock:
            parent = repo.commits[repo.branches[revision]]
            if header.get("parentCommit") and header["parentCommit"] != parent.oid:
                raise HttpError(412, "A commit has happened since the parent commit you passed. Please retry.")
            files = dict(parent.files)
            for line in lines[1:]:
                key, value = line.get("key"), line.get("value", {})
                path = value.get("path", "")
                if key == "file":
                    if value.get("encoding", "base64") != "base64":
                        raise HttpError(400, f"Unsupported encoding {value.get('encoding')!r}")
                    files[path] = base64.b64decode(value["content"])
                elif key == "deletedFile":
                    if path not in files:
                        raise HttpError(404, f"A file with this name doesn't exist: {path}", code="EntryNotFound")
                    del files[path]
                elif key == "deletedFolder":
                    prefix = path.rstrip("/") + "/"
                    for p in [p for p in files if p.startswith(prefix)]:
                        del files[p]
                elif key == "lfsFile":
                    raise HttpError(400, "LFS is not supported by the Hub test double (preupload said regular)")
                else:
                    raise HttpError(400, f"Unknown commit operation {key!r}")
            commit = self.hub._add_commit(repo, revision, files, header.get("summary") or "",
                                          header.get("description") or "")
        url = f"{self.hub._url_for(repo)}/commit/{commit.oid}"
        self._json(200, {"success": True, "commitOid": commit.oid, "commitUrl": url, "hookOutput": ""})

    def _branch(self, method: str, repo_type: str, repo_id: str, branch: str, payload: dict) -> None:
        self._require_write()
        repo = self._get_repo(repo_type, repo_id)
        with self.hub._lock:
            if method == "DELETE":
                if repo.branches.pop(branch, None) is None:
                    raise HttpError(404, f"Branch {branch} not found", code="RevisionNotFound")
                return self._json(200, {})
            if branch in repo.branches:
                raise HttpError(409, f"Reference already exists: refs/heads/{branch}")
            start = self._get_commit(repo, payload.get("startingPoint") or "main")
            repo.branches[branch] = start.oid
        self._json(200, {})

    def _tag(self, method: str, repo_type: str, repo_id: str, name: str, payload: dict) -> None:
        self._require_write()
        repo = self._get_repo(repo_type, repo_id)
        with self.hub._lock:
            if method == "DELETE":
                if repo.tags.pop(name, None) is None:
                    raise HttpError(404, f"Tag {name} not found", code="RevisionNotFound")
                return self._json(200, {})
            # POST /tag/{revision} with {"tag": name}: the URL names the revision to tag.
            target = self._get_commit(repo, name)
            tag = payload.get("tag")
            if not tag:
                raise HttpError(400, "Missing tag name")
            if tag in repo.tags:
                raise HttpError(409, f"Tag {tag} already exists")
            repo.tags[tag] = target.oid
        self._json(200, {})

    def _resolve(self, method: str, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        repo = self._get_repo(repo_type, repo_id)
        commit = self._get_commit(repo, revision)
        data = commit.files.get(path)
        if data is None:
            raise HttpError(404, f"Entry not found: {path}", code="EntryNotFound",
                           headers={"X-Repo-Commit": commit.oid})
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{git_blob_sha1(data)}"', "Accept-Ranges": "bytes"}
        status, body = 200, data
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", "").strip())
        if match:
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else len(data) - 1
            if start >= len(data):
                raise HttpError(416, "Requested range not satisfiable",
                               headers={"Content-Range": f"bytes */{len(data)}"})
            body = data[start:end + 1]
            status = 206
            headers["Content-Range"] = f"bytes {start}-{start + len(body) - 1}/{len(data)}"
        self._send(status, body, content_type="application/octet-stream", headers=headers,
                   head_only=method == "HEAD")


__all__ = ["HubDouble", "Repo", "Commit", "git_blob_sha1", "DEFAULT_USER"]
