"""A real, in-memory Hugging Face Hub server for the tests.

It speaks the part of the Hub's HTTP API that `huggingface_hub` (2.x, with `HF_HUB_DISABLE_XET=1`),
`transformers` (5.x) and `datasets` (5.x) use to push and pull models and datasets, so the real clients run
unmodified against it:

    GET    /api/whoami-v2                                   who a token belongs to (401 for a bad token)
    POST   /api/repos/create, DELETE /api/repos/delete     create (public/private) and delete repos
    PUT    /api/models/{repo}/settings                      change visibility
    GET    /api/models/{repo}[/revision/{rev}]              model info: sha, siblings, cardData, config
    GET    /api/models/{repo}/refs, /commits/{rev}          branches and history
    GET    /api/models/{repo}/tree/{rev}[/{path}]           tree listing (recursive or not)
    POST   /api/models/{repo}/paths-info/{rev}              info on given paths (form-encoded)
    POST   /api/models/{repo}/preupload/{rev}               regular or LFS upload mode per file
    POST   /api/models/{repo}/commit/{rev}                  NDJSON commit: files, LFS files, deletions
    POST   /api/models/{repo}/branch/{branch}, DELETE ...   create and delete branches
    POST   /api/validate-yaml                               the README metadata check run before a commit
    POST   /{repo}.git/info/lfs/objects/batch|verify        LFS batch API (basic transfer) and verify
    HEAD   /{repo}/resolve/{rev}/{path}, GET ...            file metadata and content; LFS files redirect

Dataset repos live in their own namespace (a model and a dataset may share a name) and are served as the Hub
serves them: the same `/api/models/...` calls under `/api/datasets/{repo}/...` (info with `siblings` and the
README's `cardData`, `revision/{rev}`, `refs`, `commits/{rev}`, `tree/{rev}[/{path}]`, `paths-info/{rev}`,
`preupload`, `commit`, `branch`), downloads at `/datasets/{repo}/resolve/{rev}/{path}`, LFS uploads at
`/datasets/{repo}.git/info/lfs/...`, and `POST /api/repos/create` with `"type": "dataset"`. Spaces are not
hosted. `datasets.load_dataset` reads such a repo through `HfFileSystem` (tree listings, paths-info, ranged
downloads); the dataset viewer's parquet export (`refs/convert/parquet`, datasets-server) is not offered, so
a repo must hold its data files (and, for several configs, a README `configs:` section), as most do.

Large (LFS) objects live on a second listener, the "CDN", at a different origin, as S3/CloudFront do on the
real Hub: the client PUTs uploads there and follows resolve redirects there, so it exercises the same
code paths (no auth header leaves the Hub origin, metadata is read from the redirect itself). URLs to it
carry single-use tickets, like presigned URLs.

Storage is content-addressed (git blob ids for regular files, sha256 for LFS objects) and every commit is
an immutable snapshot; a branch is a pointer moved in one step at the very end of a commit, after the
whole request has been received and validated. So a commit that fails, or a client that dies half way
through an upload, leaves every revision as it was. Typed errors carry the `X-Error-Code` header
(`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`) that the client turns into its typed exceptions.

Test hooks: `add_dataset(repo_id, {path: bytes})` seeds a dataset repo (created if new) with one commit,
no token needed; `fail_next_commit()` makes the next commit to a repo fail after validation; `hold_uploads()`
blocks LFS uploads until released, so a test can kill a pushing process in the middle of its upload.
`requests` records every request (method, path, whether it carried a token) for assertions.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import yaml

# The .gitattributes the Hub puts in the initial commit of a model repo (abridged to the patterns that
# matter here); files matching these go to LFS.
GITATTRIBUTES = """\
*.bin filter=lfs diff=lfs merge=lfs -text
*.ckpt filter=lfs diff=lfs merge=lfs -text
*.h5 filter=lfs diff=lfs merge=lfs -text
*.msgpack filter=lfs diff=lfs merge=lfs -text
*.npy filter=lfs diff=lfs merge=lfs -text
*.onnx filter=lfs diff=lfs merge=lfs -text
*.pickle filter=lfs diff=lfs merge=lfs -text
*.pkl filter=lfs diff=lfs merge=lfs -text
*.pt filter=lfs diff=lfs merge=lfs -text
*.pth filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
*.tar.* filter=lfs diff=lfs merge=lfs -text
*.zip filter=lfs diff=lfs merge=lfs -text
*tfevents* filter=lfs diff=lfs merge=lfs -text
"""
LFS_PATTERNS = tuple(line.split()[0] for line in GITATTRIBUTES.splitlines() if "filter=lfs" in line)
# The .gitattributes of a new dataset repo (abridged likewise): the model patterns plus the data formats.
DATASET_GITATTRIBUTES = GITATTRIBUTES + """\
*.arrow filter=lfs diff=lfs merge=lfs -text
*.parquet filter=lfs diff=lfs merge=lfs -text
*.npz filter=lfs diff=lfs merge=lfs -text
*.tar filter=lfs diff=lfs merge=lfs -text
*.tgz filter=lfs diff=lfs merge=lfs -text
*.zst filter=lfs diff=lfs merge=lfs -text
"""
DATASET_LFS_PATTERNS = tuple(
    line.split()[0] for line in DATASET_GITATTRIBUTES.splitlines() if "filter=lfs" in line
)
REPO_TYPES = ("model", "dataset")
# Above this size the Hub stores any file in LFS, whatever its name.
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
INVALID_TOKEN_MESSAGE = "Invalid credentials in Authorization header"


def git_blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _valid_name(name: str) -> bool:
    return (
        0 < len(name) <= 96
        and set(name) <= NAME_CHARS
        and name[0] not in "-."
        and name[-1] not in "-."
        and "--" not in name
        and ".." not in name
        and not name.endswith(".git")
    )


@dataclass(frozen=True)
class Entry:
    """A file in a snapshot: its git blob id and size; LFS files also their sha256, size and pointer size."""

    oid: str
    size: int
    lfs_sha256: str | None = None

    @property
    def pointer_size(self) -> int | None:
        return None if self.lfs_sha256 is None else len(lfs_pointer(self.lfs_sha256, self.size))

    def info(self, path: str) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "file", "oid": self.oid, "size": self.size, "path": path}
        if self.lfs_sha256 is not None:
            out["lfs"] = {"oid": self.lfs_sha256, "size": self.size, "pointerSize": self.pointer_size}
        return out


@dataclass(frozen=True)
class Commit:
    id: str
    parents: tuple[str, ...]
    title: str
    message: str
    author: str
    date: str
    files: MappingProxyType  # path -> Entry; never mutated once the commit exists


@dataclass
class Repo:
    repo_id: str
    private: bool
    created_at: str
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit id
    commits: dict[str, Commit] = field(default_factory=dict)
    repo_type: str = "model"  # or "dataset"

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/")[0]

    @property
    def url_prefix(self) -> str:
        """Where the repo's pages and files are, relative to the endpoint: `user/x` or `datasets/user/x`."""
        return self.repo_id if self.repo_type == "model" else f"{self.repo_type}s/{self.repo_id}"

    @property
    def lfs_patterns(self) -> tuple[str, ...]:
        return LFS_PATTERNS if self.repo_type == "model" else DATASET_LFS_PATTERNS


@dataclass(frozen=True)
class User:
    name: str
    role: str = "write"  # "read" or "write", as the Hub's classic access tokens
    orgs: tuple[str, ...] = ()


class HubError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        **extra,
    ):
        super().__init__(message)
        self.status, self.message, self.code, self.headers, self.extra = (
            status,
            message,
            code,
            headers or {},
            extra,
        )


class UploadHold:
    """Blocks LFS uploads on the CDN: `started` is set when the first one arrives; `release()` lets them go."""

    def __init__(self):
        self.started = threading.Event()
        self._released = threading.Event()

    def wait(self) -> None:
        self.started.set()
        self._released.wait()

    def release(self) -> None:
        self._released.set()


class HubState:
    """Users, repos, content-addressed storage. Every mutation happens under one lock."""

    def __init__(self):
        self.lock = threading.RLock()
        self.users: dict[str, User] = {}  # token -> user
        self.repos: dict[str, Repo] = {}  # model repos
        self.datasets: dict[str, Repo] = {}  # dataset repos: a separate namespace, as on the Hub
        self.blobs: dict[str, bytes] = {}  # git blob id -> content (regular files)
        self.lfs: dict[str, bytes] = {}  # sha256 -> content
        self.tickets: dict[str, tuple[str, str, int]] = {}  # ticket -> (action, sha256, size)
        self.requests: list[dict[str, Any]] = []
        self._fail_commits: dict[str, str] = {}
        self.upload_hold: UploadHold | None = None
        self._counter = 0

    # -- accounts ---------------------------------------------------------------------------------------
    def add_user(self, name: str, token: str | None = None, *, role: str = "write", orgs=()) -> str:
        token = token or f"hf_test_{name}_{role}_{secrets.token_hex(8)}"
        with self.lock:
            self.users[token] = User(name, role, tuple(orgs))
        return token

    # -- test hooks -------------------------------------------------------------------------------------
    def fail_next_commit(
        self, repo_id: str, message: str = "injected failure while writing the commit"
    ) -> None:
        with self.lock:
            self._fail_commits[repo_id] = message

    @contextlib.contextmanager
    def hold_uploads(self):
        hold = UploadHold()
        self.upload_hold = hold
        try:
            yield hold
        finally:
            self.upload_hold = None
            hold.release()

    def add_dataset(
        self,
        repo_id: str,
        files: dict[str, bytes | str],
        *,
        private: bool = False,
        message: str = "Upload dataset",
        branch: str = "main",
    ) -> str:
        """Seed dataset repo `repo_id` (created, with its initial commit, if new) with one commit adding
        `files` to `branch` (made from main if new); returns the commit id. Files go to LFS by the rules
        that uploads follow."""
        with self.lock:
            repo = self.datasets.get(repo_id)
            if repo is None:
                repo = self.create_repo(
                    repo_id, private=private, author=repo_id.split("/")[0], repo_type="dataset"
                )
            head = repo.commits[repo.branches.get(branch, repo.branches["main"])]
            tree = dict(head.files)
            for path, content in files.items():
                data = content.encode() if isinstance(content, str) else bytes(content)
                if _upload_mode(path, len(data), data[:512], repo.lfs_patterns) == "lfs":
                    sha = hashlib.sha256(data).hexdigest()
                    self.lfs.setdefault(sha, data)
                    pointer = lfs_pointer(sha, len(data))
                    tree[path.strip("/")] = Entry(oid=git_blob_id(pointer), size=len(data), lfs_sha256=sha)
                else:
                    tree[path.strip("/")] = self.store_regular(data)
            commit = self.make_commit(repo, head.id, tree, message, "", repo.namespace)
            repo.branches[branch] = commit.id
            return commit.id

    # -- reading ----------------------------------------------------------------------------------------
    def repos_of(self, repo_type: str) -> dict[str, Repo]:
        if repo_type not in REPO_TYPES:
            raise HubError(
                404, f"this test server only hosts model and dataset repos, not {repo_type}s", "RepoNotFound"
            )
        return self.repos if repo_type == "model" else self.datasets

    def repo(self, repo_id: str, user: User | None, repo_type: str = "model") -> Repo:
        repo = self.repos_of(repo_type).get(repo_id)
        if repo is None or (repo.private and not self._is_member(user, repo.namespace)):
            # Like the Hub: a private repo you cannot see does not exist; anonymous callers get a 401.
            raise HubError(401 if user is None else 404, f"Repository {repo_id} not found", "RepoNotFound")
        return repo

    def writable_repo(self, repo_id: str, user: User | None, repo_type: str = "model") -> Repo:
        repo = self.repo(repo_id, user, repo_type)
        self.check_write(user, repo.namespace)
        return repo

    def check_write(self, user: User | None, namespace: str) -> User:
        if user is None:
            raise HubError(401, "You must be authenticated to write to the Hub: no token was sent.")
        if user.role != "write":
            raise HubError(
                403, "This token has read-only access; a token with the write role is needed to push."
            )
        if not self._is_member(user, namespace):
            raise HubError(403, f"You don't have the rights to write to the namespace {namespace}.")
        return user

    @staticmethod
    def _is_member(user: User | None, namespace: str) -> bool:
        return user is not None and (user.name == namespace or namespace in user.orgs)

    def resolve(self, repo: Repo, revision: str) -> Commit:
        if revision in repo.branches:
            return repo.commits[repo.branches[revision]]
        if revision.startswith("refs/heads/") and revision[len("refs/heads/") :] in repo.branches:
            return repo.commits[repo.branches[revision[len("refs/heads/") :]]]
        if revision in repo.commits:
            return repo.commits[revision]
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def content(self, entry: Entry) -> bytes:
        return self.lfs[entry.lfs_sha256] if entry.lfs_sha256 is not None else self.blobs[entry.oid]

    def file(self, repo_id: str, path: str, revision: str = "main", repo_type: str = "model") -> bytes:
        """Content of `path` at `revision` (test helper, no auth)."""
        repo = self.repos_of(repo_type)[repo_id]
        return self.content(self.resolve(repo, revision).files[path])

    def head(self, repo_id: str, branch: str = "main", repo_type: str = "model") -> str:
        return self.repos_of(repo_type)[repo_id].branches[branch]

    # -- writing ----------------------------------------------------------------------------------------
    def _new_commit_id(self, payload: str) -> str:
        self._counter += 1
        return hashlib.sha1(f"{self._counter}\0{time.time_ns()}\0{payload}".encode()).hexdigest()

    def make_commit(
        self, repo: Repo, parent: str | None, files: dict[str, Entry], title: str, message: str, author: str
    ) -> Commit:
        listing = "\n".join(f"{p} {e.oid}" for p, e in sorted(files.items()))
        commit = Commit(
            id=self._new_commit_id(f"{parent}\0{title}\0{listing}"),
            parents=(parent,) if parent else (),
            title=title,
            message=message,
            author=author,
            date=_now(),
            files=MappingProxyType(dict(files)),
        )
        repo.commits[commit.id] = commit
        return commit

    def store_regular(self, content: bytes) -> Entry:
        oid = git_blob_id(content)
        self.blobs.setdefault(oid, content)
        return Entry(oid=oid, size=len(content))

    def create_repo(self, repo_id: str, private: bool, author: str, repo_type: str = "model") -> Repo:
        repo = Repo(repo_id=repo_id, private=private, created_at=_now(), repo_type=repo_type)
        attributes = GITATTRIBUTES if repo_type == "model" else DATASET_GITATTRIBUTES
        gitattributes = self.store_regular(attributes.encode())
        commit = self.make_commit(repo, None, {".gitattributes": gitattributes}, "initial commit", "", author)
        repo.branches["main"] = commit.id
        self.repos_of(repo_type)[repo_id] = repo
        return repo

    def secret_in_storage(self, secret: str) -> bool:
        """Whether `secret` appears in any stored content or commit message (a leaked token would)."""
        needle = secret.encode()
        with self.lock:
            if any(needle in blob for blob in (*self.blobs.values(), *self.lfs.values())):
                return True
            return any(
                secret in c.title or secret in c.message
                for r in (*self.repos.values(), *self.datasets.values())
                for c in r.commits.values()
            )


def _upload_mode(path: str, size: int, sample: bytes, patterns: tuple[str, ...] = LFS_PATTERNS) -> str:
    name = path.rsplit("/", 1)[-1]
    if any(fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(path, pattern) for pattern in patterns):
        return "lfs"
    if size > LFS_SIZE_THRESHOLD or b"\0" in sample:
        return "lfs"
    return "regular"


def _front_matter(text: str) -> dict | None:
    """The YAML metadata block of a README, parsed; None if there is none. Raises ValueError if malformed."""
    if not text.startswith("---"):
        return None
    parts = text.split("\n---", 1)
    if len(parts) != 2:
        raise ValueError("the YAML metadata block is not closed by a line '---'")
    try:
        data = yaml.safe_load(parts[0][3:])
    except yaml.YAMLError as err:
        raise ValueError(f"the YAML metadata does not parse: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError("the YAML metadata must be a mapping")
    return data


def validate_metadata(data: dict) -> list[str]:
    """The checks the Hub applies to model-card metadata that our cards could get wrong."""
    errors = []
    for key in ("license", "library_name", "pipeline_tag"):
        if key in data and not isinstance(data[key], str):
            errors.append(f'"{key}" must be a string')
    for key in ("tags", "datasets", "language"):
        if key in data and not (
            isinstance(data[key], str)
            or (isinstance(data[key], list) and all(isinstance(v, str) for v in data[key]))
        ):
            errors.append(f'"{key}" must be a string or a list of strings')
    index = data.get("model-index")
    if index is not None:
        if not isinstance(index, list):
            return [*errors, '"model-index" must be a list']
        for i, model in enumerate(index):
            if not isinstance(model, dict) or not isinstance(model.get("name"), str):
                errors.append(f'"model-index[{i}].name" must be a string')
                continue
            for j, result in enumerate(model.get("results") or []):
                where = f"model-index[{i}].results[{j}]"
                if not isinstance((result.get("task") or {}).get("type"), str):
                    errors.append(f'"{where}.task.type" is required')
                dataset = result.get("dataset") or {}
                if not isinstance(dataset.get("type"), str) or not isinstance(dataset.get("name"), str):
                    errors.append(f'"{where}.dataset" needs "type" and "name"')
                metrics = result.get("metrics")
                if not isinstance(metrics, list) or not metrics:
                    errors.append(f'"{where}.metrics" must be a non-empty list')
                    continue
                for k, metric in enumerate(metrics):
                    if not isinstance(metric.get("type"), str) or "value" not in metric:
                        errors.append(f'"{where}.metrics[{k}]" needs "type" and "value"')
    return errors


# ----------------------------------------------------------------------------------------------------------
# HTTP
# ----------------------------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "recurrent-mlm-test-hub/1.0"
    hub: HubServer  # set on the subclass each server builds

    def log_message(self, format, *args):  # quiet: failures surface as client errors in the tests
        pass

    # -- plumbing ---------------------------------------------------------------------------------------
    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunk = self.rfile.read(size)
                if len(chunk) != size:
                    raise ConnectionError("request body ended early")
                chunks.append(chunk)
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            raise ConnectionError("request body ended early")
        return body

    def _user(self) -> User | None:
        header = self.headers.get("Authorization")
        if not header:
            return None
        token = header.removeprefix("Bearer ").strip()
        user = self.hub.state.users.get(token)
        if user is None:
            raise HubError(401, INVALID_TOKEN_MESSAGE)
        return user

    def _send(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, *, head: bool = False
    ):
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if body and not head:
            self.wfile.write(body)

    def _json(
        self,
        status: int,
        data: Any,
        headers: dict[str, str] | None = None,
        *,
        content_type="application/json",
    ):
        self._send(status, json.dumps(data).encode(), {"Content-Type": content_type, **(headers or {})})

    def _error(self, err: HubError, *, head: bool = False):
        headers = {"Content-Type": "application/json", "X-Error-Message": err.message, **err.headers}
        if err.code:
            headers["X-Error-Code"] = err.code
        self._send(
            err.status,
            b"" if head else json.dumps({"error": err.message, **err.extra}).encode(),
            headers,
            head=head,
        )

    def _dispatch(self, method: str):
        url = urlsplit(self.path)
        # Split the raw path before unquoting so a quoted "/" inside a revision stays in its segment.
        segments = [unquote(s) for s in url.path.split("/")[1:]]
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        record = {
            "server": self.role,
            "method": method,
            "path": unquote(url.path),
            "auth": "Authorization" in self.headers,
        }
        self.hub.state.requests.append(record)
        try:
            body = b"" if method in ("GET", "HEAD") else self._read_body()
        except (ConnectionError, ValueError):
            self.close_connection = True
            return
        try:
            self.route(method, segments, query, body)
        except HubError as err:
            record["status"] = err.status
            self._error(err, head=method == "HEAD")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")


class _ApiHandler(_Handler):
    role = "api"

    def route(self, method: str, seg: list[str], query: dict[str, str], body: bytes) -> None:
        state = self.hub.state
        user = self._user()
        with state.lock:
            if seg[:2] == ["api", "whoami-v2"] and method == "GET":
                return self.whoami(user)
            if seg[:2] == ["api", "validate-yaml"] and method == "POST":
                return self.validate_yaml(body)
            if seg[:3] == ["api", "repos", "create"] and method == "POST":
                return self.create_repo(user, json.loads(body or b"{}"))
            if seg[:3] == ["api", "repos", "delete"] and method == "DELETE":
                payload = json.loads(body or b"{}")
                repo_id = (
                    f"{payload.get('organization') or (user.name if user else '')}/{payload.get('name')}"
                )
                repo_type = payload.get("type") or "model"
                state.writable_repo(repo_id, user, repo_type)
                del state.repos_of(repo_type)[repo_id]
                return self._json(200, {})
            if seg[:1] == ["api"] and len(seg) >= 4:
                if seg[1] not in ("models", "datasets"):
                    raise HubError(
                        404,
                        f"this test server only hosts model and dataset repos, not {seg[1]}",
                        "RepoNotFound",
                    )
                return self.repo_api(
                    method, f"{seg[2]}/{seg[3]}", seg[4:], query, body, user, seg[1][: -len("s")]
                )
            # /datasets/{repo}/... : the dataset twins of the model routes below
            repo_type = "model"
            if seg[:1] == ["datasets"] and len(seg) >= 3:
                repo_type, seg = "dataset", seg[1:]
            if len(seg) >= 4 and seg[1].endswith(".git") and seg[2:5] == ["info", "lfs", "objects"]:
                return self.lfs_api(
                    f"{seg[0]}/{seg[1][: -len('.git')]}", seg[5:], json.loads(body or b"{}"), user, repo_type
                )
            if len(seg) >= 5 and seg[2] == "resolve" and method in ("GET", "HEAD"):
                return self.resolve(
                    method, f"{seg[0]}/{seg[1]}", seg[3], "/".join(seg[4:]), user, repo_type
                )
        raise HubError(404, f"not implemented by the test Hub: {method} {self.path}")

    # -- account ----------------------------------------------------------------------------------------
    def whoami(self, user: User | None):
        if user is None:
            raise HubError(401, INVALID_TOKEN_MESSAGE)
        self._json(
            200,
            {
                "type": "user",
                "id": hashlib.sha1(user.name.encode()).hexdigest()[:24],
                "name": user.name,
                "fullname": user.name.title(),
                "email": None,
                "canPay": False,
                "isPro": False,
                "orgs": [{"type": "org", "name": org, "roleInOrg": "write"} for org in user.orgs],
                "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": user.role}},
            },
        )

    def validate_yaml(self, body: bytes):
        content = json.loads(body).get("content", "")
        try:
            data = _front_matter(content)
            errors = [] if data is None else validate_metadata(data)
        except ValueError as err:
            errors = [str(err)]
        warnings = [] if errors or data else [{"message": "empty or missing yaml metadata in repo card"}]
        if errors:
            return self._json(400, {"errors": [{"message": e} for e in errors], "warnings": warnings})
        self._json(200, {"errors": [], "warnings": warnings})

    def create_repo(self, user: User | None, payload: dict):
        state = self.hub.state
        repo_type = payload.get("type") or "model"
        if repo_type not in REPO_TYPES:
            raise HubError(400, "this test server only hosts model and dataset repos")
        name, namespace = (
            payload.get("name") or "",
            payload.get("organization") or (user.name if user else None),
        )
        if not _valid_name(name) or (namespace is not None and not _valid_name(namespace)):
            raise HubError(400, f"Invalid repo name: {namespace}/{name}")
        state.check_write(user, namespace)
        repo_id = f"{namespace}/{name}"
        url = f"{self.hub.endpoint}/{repo_id if repo_type == 'model' else 'datasets/' + repo_id}"
        if repo_id in state.repos_of(repo_type):
            raise HubError(409, f"You already created this {repo_type} repo", url=url)
        state.create_repo(
            repo_id, private=payload.get("visibility") == "private", author=user.name, repo_type=repo_type
        )
        self._json(200, {"url": url, "name": repo_id, "id": hashlib.sha1(repo_id.encode()).hexdigest()[:24]})

    # -- /api/models/{repo}/..., /api/datasets/{repo}/... ---------------------------------------------
    def repo_api(
        self,
        method: str,
        repo_id: str,
        rest: list[str],
        query: dict,
        body: bytes,
        user: User | None,
        repo_type: str = "model",
    ):
        state = self.hub.state
        repo = state.repo(repo_id, user, repo_type)
        action = rest[0] if rest else ""
        if method == "GET" and action in ("", "revision"):
            commit = state.resolve(repo, rest[1] if action == "revision" else "main")
            blobs = query.get("blobs") in ("true", "True", "1")
            info = self.model_info if repo_type == "model" else self.dataset_info
            return self._json(200, info(repo, commit, blobs=blobs))
        if method == "GET" and action == "refs":
            branches = [
                {"name": b, "ref": f"refs/heads/{b}", "targetCommit": c} for b, c in repo.branches.items()
            ]
            return self._json(200, {"branches": branches, "converts": [], "tags": [], "pullRequests": []})
        if method == "GET" and action == "commits":
            return self._json(200, self.history(repo, state.resolve(repo, rest[1])))
        if method == "GET" and action == "tree":
            commit = state.resolve(repo, rest[1])
            return self._json(
                200, self.tree(commit, "/".join(rest[2:]), query.get("recursive") in ("true", "True", "1"))
            )
        if method == "POST" and action == "paths-info":
            commit = state.resolve(repo, rest[1])
            form = parse_qs(body.decode())
            return self._json(
                200, [info for p in form.get("paths", []) if (info := self.path_info(commit, p))]
            )
        if method == "PUT" and action == "settings":
            state.check_write(user, repo.namespace)
            payload = json.loads(body or b"{}")
            if "visibility" in payload:
                repo.private = payload["visibility"] == "private"
            elif "private" in payload:
                repo.private = bool(payload["private"])
            return self._json(200, {})
        if method == "POST" and action == "preupload":
            state.check_write(user, repo.namespace)
            return self.preupload(repo, rest[1], json.loads(body))
        if method == "POST" and action == "commit":
            state.check_write(user, repo.namespace)
            if query.get("create_pr"):
                raise HubError(400, "pull requests are not supported by this test server")
            return self.commit(repo, rest[1], body, user)
        if action == "branch" and len(rest) == 2:
            state.check_write(user, repo.namespace)
            return self.branch(method, repo, rest[1], json.loads(body or b"{}"))
        raise HubError(404, f"not implemented by the test Hub: {method} {self.path}")

    @staticmethod
    def _siblings(commit: Commit, blobs: bool) -> list[dict]:
        siblings = []
        for path, entry in sorted(commit.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling.update(size=entry.size, blobId=entry.oid)
                if entry.lfs_sha256:
                    sibling["lfs"] = {
                        "size": entry.size,
                        "sha256": entry.lfs_sha256,
                        "pointerSize": entry.pointer_size,
                    }
            siblings.append(sibling)
        return siblings

    def _card(self, commit: Commit) -> dict:
        card = {}
        if "README.md" in commit.files:
            with contextlib.suppress(ValueError):
                card = _front_matter(self.hub.state.content(commit.files["README.md"]).decode()) or {}
        return card

    def _repo_info(self, repo: Repo, commit: Commit, blobs: bool, card: dict, id_seed: str) -> dict:
        """The fields model and dataset info share (what the clients read: sha, siblings, cardData, ...)."""
        info = {
            "_id": hashlib.sha1(id_seed.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.namespace,
            "sha": commit.id,
            "lastModified": commit.date,
            "createdAt": repo.created_at,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": list(card.get("tags") or []),
            "siblings": self._siblings(commit, blobs),
        }
        if card:
            info["cardData"] = card
        return info

    def model_info(self, repo: Repo, commit: Commit, blobs: bool) -> dict:
        state = self.hub.state
        card, config = self._card(commit), None
        if "config.json" in commit.files:
            with contextlib.suppress(ValueError):
                full = json.loads(state.content(commit.files["config.json"]))
                config = {k: full[k] for k in ("architectures", "model_type", "auto_map") if k in full}
        info = {**self._repo_info(repo, commit, blobs, card, repo.repo_id), "modelId": repo.repo_id, "spaces": []}
        for key in ("library_name", "pipeline_tag", "model-index"):
            if key in card:
                info[key] = card[key]
        if config is not None:
            info["config"] = config
        return info

    def dataset_info(self, repo: Repo, commit: Commit, blobs: bool) -> dict:
        card = self._card(commit)
        return {**self._repo_info(repo, commit, blobs, card, f"datasets/{repo.repo_id}"), "description": ""}

    def history(self, repo: Repo, commit: Commit) -> list[dict]:
        out = []
        while True:
            out.append(
                {
                    "id": commit.id,
                    "title": commit.title,
                    "message": commit.message,
                    "date": commit.date,
                    "authors": [{"user": commit.author}],
                }
            )
            if not commit.parents:
                return out
            commit = repo.commits[commit.parents[0]]

    @staticmethod
    def _folder_oid(commit: Commit, prefix: str) -> str:
        listing = "\n".join(f"{p} {e.oid}" for p, e in sorted(commit.files.items()) if p.startswith(prefix))
        return hashlib.sha1(listing.encode()).hexdigest()

    def tree(self, commit: Commit, path: str, recursive: bool) -> list[dict]:
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        if prefix and not any(p.startswith(prefix) for p in commit.files):
            raise HubError(404, f"{path} does not exist at this revision", "EntryNotFound")
        out, folders = [], set()
        for file_path, entry in sorted(commit.files.items()):
            if not file_path.startswith(prefix):
                continue
            parts = file_path[len(prefix) :].split("/")
            for depth in range(1, len(parts) if recursive else min(len(parts), 2)):
                folders.add(prefix + "/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                out.append(entry.info(file_path))
        out += [
            {"type": "directory", "oid": self._folder_oid(commit, f + "/"), "size": 0, "path": f}
            for f in sorted(folders)
        ]
        return out

    def path_info(self, commit: Commit, path: str) -> dict | None:
        path = path.strip("/")
        if path in commit.files:
            return commit.files[path].info(path)
        if any(p.startswith(path + "/") for p in commit.files):
            return {"type": "directory", "oid": self._folder_oid(commit, path + "/"), "size": 0, "path": path}
        return None

    def preupload(self, repo: Repo, revision: str, payload: dict):
        state = self.hub.state
        commit = state.resolve(repo, revision)
        files = []
        for item in payload.get("files", []):
            mode = _upload_mode(
                item["path"], int(item["size"]), base64.b64decode(item.get("sample", "")), repo.lfs_patterns
            )
            remote = commit.files.get(item["path"])
            remote_oid = None if remote is None else (remote.lfs_sha256 or remote.oid)
            files.append({"path": item["path"], "uploadMode": mode, "shouldIgnore": False, "oid": remote_oid})
        self._json(200, {"files": files, "commitOid": commit.id})

    def commit(self, repo: Repo, revision: str, body: bytes, user: User):
        state = self.hub.state
        branch = revision
        if branch not in repo.branches:
            raise HubError(
                404, f"Invalid rev id: {branch} (commits go to an existing branch)", "RevisionNotFound"
            )
        head = repo.commits[repo.branches[branch]]
        try:
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise HubError(400, f"malformed NDJSON commit payload: {err}") from None
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "the commit payload must start with a header line")
        header = lines[0]["value"]
        parent = header.get("parentCommit")
        if parent and parent != head.id:
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(head.files)
        new_blobs: dict[str, bytes] = {}
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value") or {}
            path = str(value.get("path", "")).strip("/")
            if not path or ".." in path.split("/"):
                raise HubError(400, f"invalid path in commit: {path!r}")
            if key == "file":
                content = (
                    base64.b64decode(value["content"])
                    if value.get("encoding") == "base64"
                    else value["content"].encode()
                )
                oid = git_blob_id(content)
                new_blobs[oid] = content
                files[path] = Entry(oid=oid, size=len(content))
            elif key == "lfsFile":
                sha = value.get("oid")
                if sha not in state.lfs:
                    raise HubError(
                        422, f"LFS object {sha} for {path} was never uploaded; upload it before committing."
                    )
                size = len(state.lfs[sha])
                if value.get("size") not in (None, size):
                    raise HubError(422, f"LFS object {sha} has size {size}, the commit says {value['size']}.")
                files[path] = Entry(oid=git_blob_id(lfs_pointer(sha, size)), size=size, lfs_sha256=sha)
            elif key == "deletedFile":
                if path not in files:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                del files[path]
            elif key == "deletedFolder":
                doomed = [p for p in files if p.startswith(path + "/")]
                if not doomed:
                    raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                for p in doomed:
                    del files[p]
            else:
                raise HubError(400, f"unknown commit operation {key!r}")
        failure = state._fail_commits.pop(repo.repo_id, None)
        if failure is not None:
            raise HubError(500, failure)
        state.blobs.update(new_blobs)
        commit = state.make_commit(
            repo, head.id, files, header.get("summary") or "", header.get("description") or "", user.name
        )
        repo.branches[branch] = commit.id  # the one step that makes the new snapshot visible
        self._json(
            200,
            {
                "success": True,
                "commitOid": commit.id,
                "commitUrl": f"{self.hub.endpoint}/{repo.url_prefix}/commit/{commit.id}",
                "pullRequestUrl": None,
            },
        )

    def branch(self, method: str, repo: Repo, name: str, payload: dict):
        if method == "POST":
            if not name or any(c in name for c in " ~^:?*[\\") or name.startswith("/") or ".." in name:
                raise HubError(400, f"Invalid branch name: {name!r}")
            if name in repo.branches:
                raise HubError(409, f"Reference refs/heads/{name} already exists")
            start = self.hub.state.resolve(repo, payload.get("startingPoint") or "main")
            repo.branches[name] = start.id
            return self._json(200, {})
        if method == "DELETE":
            if name == "main" or name not in repo.branches:
                raise HubError(
                    400 if name == "main" else 404,
                    f"cannot delete branch {name!r}",
                    None if name == "main" else "RevisionNotFound",
                )
            del repo.branches[name]
            return self._json(200, {})
        raise HubError(405, f"{method} is not allowed on a branch")

    # -- LFS batch API ----------------------------------------------------------------------------------
    def lfs_api(
        self, repo_id: str, rest: list[str], payload: dict, user: User | None, repo_type: str = "model"
    ):
        state = self.hub.state
        repo = state.writable_repo(repo_id, user, repo_type)
        lfs_json = "application/vnd.git-lfs+json"
        if rest == ["verify"]:
            sha, size = payload.get("oid"), payload.get("size")
            if sha not in state.lfs or len(state.lfs[sha]) != size:
                raise HubError(404, f"LFS object {sha} ({size} bytes) is not stored")
            return self._json(200, {"message": "ok"}, content_type=lfs_json)
        if rest != ["batch"] or payload.get("operation") != "upload":
            raise HubError(400, "only LFS batch uploads are supported")
        if "basic" not in payload.get("transfers", ["basic"]):
            raise HubError(400, "this test server offers only the basic LFS transfer")
        objects = []
        for obj in payload.get("objects", []):
            sha, size = obj["oid"], int(obj["size"])
            item: dict[str, Any] = {"oid": sha, "size": size, "authenticated": True}
            if sha not in state.lfs:  # already-stored content needs no upload: "actions" is left out
                ticket = secrets.token_urlsafe(16)
                state.tickets[ticket] = ("upload", sha, size)
                item["actions"] = {
                    "upload": {"href": f"{self.hub.cdn_url}/lfs/{sha}?ticket={ticket}"},
                    "verify": {"href": f"{self.hub.endpoint}/{repo.url_prefix}.git/info/lfs/objects/verify"},
                }
            objects.append(item)
        self._json(
            200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}, content_type=lfs_json
        )

    # -- downloads --------------------------------------------------------------------------------------
    def resolve(
        self, method: str, repo_id: str, revision: str, path: str, user: User | None, repo_type: str = "model"
    ):
        state = self.hub.state
        repo = state.repo(repo_id, user, repo_type)
        commit = state.resolve(repo, revision)
        entry = commit.files.get(path)
        if entry is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.id})
        headers = {"X-Repo-Commit": commit.id, "Accept-Ranges": "bytes"}
        if entry.lfs_sha256 is not None:
            ticket = secrets.token_urlsafe(16)
            state.tickets[ticket] = ("download", entry.lfs_sha256, entry.size)
            headers.update(
                {
                    "Location": f"{self.hub.cdn_url}/lfs/{entry.lfs_sha256}?ticket={ticket}",
                    "ETag": f'"{entry.oid}"',
                    "X-Linked-Etag": f'"{entry.lfs_sha256}"',
                    "X-Linked-Size": str(entry.size),
                }
            )
            return self._send(302, b"", headers, head=method == "HEAD")
        content = state.content(entry)
        headers.update({"ETag": f'"{entry.oid}"', "Content-Type": "application/octet-stream"})
        _send_range(self, content, headers, head=method == "HEAD")


def _send_range(handler: _Handler, content: bytes, headers: dict[str, str], *, head: bool) -> None:
    byte_range = handler.headers.get("Range", "")
    if byte_range.startswith("bytes="):
        start_s, _, end_s = byte_range[len("bytes=") :].partition("-")
        if start_s:
            start, end = int(start_s), int(end_s) if end_s else len(content) - 1
        else:  # a suffix range: the last N bytes
            start, end = max(0, len(content) - int(end_s)), len(content) - 1
        part = content[start : end + 1]
        headers["Content-Range"] = f"bytes {start}-{start + len(part) - 1}/{len(content)}"
        return handler._send(206, part, headers, head=head)
    handler._send(200, content, {**headers, "Content-Length": str(len(content))}, head=head)


class _CdnHandler(_Handler):
    """Object storage at another origin: presigned (ticket) uploads and downloads, no Hub credentials."""

    role = "cdn"

    def _dispatch(self, method: str):
        hold = self.hub.state.upload_hold
        if method == "PUT" and hold is not None:
            # The uploading client is now waiting for our answer: a test can kill it here, mid-upload.
            hold.wait()
        super()._dispatch(method)

    def route(self, method: str, seg: list[str], query: dict[str, str], body: bytes) -> None:
        state = self.hub.state
        if len(seg) != 2 or seg[0] != "lfs":
            raise HubError(404, "no such object")
        sha = seg[1]
        with state.lock:
            ticket = state.tickets.get(query.get("ticket", ""))
        if method == "PUT":
            if ticket is None or ticket[:2] != ("upload", sha):
                raise HubError(403, "upload URL is not valid (expired or for another object)")
            if len(body) != ticket[2] or hashlib.sha256(body).hexdigest() != sha:
                raise HubError(400, f"uploaded content does not match sha256 {sha} and size {ticket[2]}")
            with state.lock:
                state.lfs.setdefault(sha, body)
                state.tickets.pop(query["ticket"], None)
            return self._send(200, b"", {"ETag": f'"{sha}"'})
        if method in ("GET", "HEAD"):
            if ticket is None or ticket[:2] != ("download", sha) or sha not in state.lfs:
                raise HubError(403, "download URL is not valid")
            return _send_range(
                self,
                state.lfs[sha],
                {"Content-Type": "application/octet-stream", "ETag": f'"{sha}"'},
                head=method == "HEAD",
            )
        raise HubError(405, f"{method} is not allowed here")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class HubServer:
    """Two listeners on 127.0.0.1 (the Hub API and its object store) sharing one `HubState`."""

    def __init__(self, host: str = "127.0.0.1"):
        self.state = HubState()
        self._servers = []
        for role, base in (("api", _ApiHandler), ("cdn", _CdnHandler)):
            handler = type(f"{base.__name__}Bound", (base,), {"hub": self})
            server = _Server((host, 0), handler)
            self._servers.append(server)
            setattr(self, f"{role}_port", server.server_address[1])
        self.endpoint = f"http://{host}:{self.api_port}"
        self.cdn_url = f"http://{host}:{self.cdn_port}"
        self._threads: list[threading.Thread] = []

    def start(self) -> HubServer:
        for server in self._servers:
            thread = threading.Thread(
                target=server.serve_forever, name=f"test-hub-{server.server_address[1]}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        if self.state.upload_hold is not None:
            self.state.upload_hold.release()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def url(self, repo_id: str, revision: str = "main", path: str = "", repo_type: str = "model") -> str:
        prefix = repo_id if repo_type == "model" else f"{repo_type}s/{repo_id}"
        return f"{self.endpoint}/{prefix}/resolve/{quote(revision, safe='')}/{quote(path)}"


# ----------------------------------------------------------------------------------------------------------
# Pointing the real clients at it
# ----------------------------------------------------------------------------------------------------------
_SHARED: HubServer | None = None


def shared_hub() -> HubServer:
    """The one server of this test session (started on first use; its threads are daemons)."""
    global _SHARED
    if _SHARED is None:
        _SHARED = HubServer().start()
    return _SHARED


def client_env(hub: HubServer, token: str | None = None, **extra: str) -> dict[str, str]:
    """Environment variables that point a fresh process's huggingface_hub at `hub` (read at its import)."""
    env = {
        "HF_ENDPOINT": hub.endpoint,
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    env["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    env["HF_UPDATE_DOWNLOAD_COUNTS"] = "0"  # datasets would otherwise ping an S3 bucket on every load
    if token is not None:
        env["HF_TOKEN"] = token
    env.update(extra)
    return env


def use_hub(monkeypatch, hub: HubServer, token: str | None = None) -> None:
    """Point the already-imported clients of this process at `hub`, for one test.

    huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE into `constants` when it is imported (conftest
    has imported it offline by then), and two objects copy the endpoint when they are built: the module
    level `HfApi` behind functions such as `huggingface_hub.create_repo`, and transformers' shared `HfApi`.
    Everything else reads `constants` at call time, so patching these is enough; monkeypatch undoes it.
    `datasets` keeps its own copies of the endpoint and the offline flag in `datasets.config`: patched too.
    """
    from huggingface_hub import constants, hf_api

    monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_api.api, "endpoint", hub.endpoint)
    try:
        import transformers.utils.hub as transformers_hub
    except ImportError:
        transformers_hub = None
    if transformers_hub is not None and hasattr(transformers_hub, "_hf_api"):
        monkeypatch.setattr(transformers_hub, "_hf_api", None)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    if token is not None:
        monkeypatch.setenv("HF_TOKEN", token)
    # datasets copies the endpoint and the offline flag into its own config at import, too.
    from datasets import config as datasets_config

    monkeypatch.setattr(datasets_config, "HF_ENDPOINT", hub.endpoint)
    monkeypatch.setattr(
        datasets_config, "HUB_DATASETS_URL", hub.endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}"
    )
    monkeypatch.setattr(datasets_config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets_config, "HF_DATASETS_OFFLINE", False)
    monkeypatch.setattr(datasets_config, "HF_UPDATE_DOWNLOAD_COUNTS", False)


def isolate_hf_caches(monkeypatch, root) -> Path:
    """Give this test its own Hugging Face caches under `root` (returned), in this process and its children.

    Like the endpoint, the cache folders are read into `huggingface_hub.constants` and `datasets.config` at
    import; the environment variables are set too, for child processes. monkeypatch undoes it all.
    """
    from datasets import config as datasets_config
    from huggingface_hub import constants

    root = Path(root)
    hub_cache, datasets_cache = root / "hub", root / "datasets"
    monkeypatch.setenv("HF_HOME", str(root))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(datasets_cache))
    monkeypatch.setattr(constants, "HF_HOME", str(root))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(datasets_config, "HF_CACHE_HOME", str(root))
    monkeypatch.setattr(datasets_config, "HF_DATASETS_CACHE", datasets_cache)
    monkeypatch.setattr(datasets_config, "HF_MODULES_CACHE", root / "modules")
    monkeypatch.setattr(datasets_config, "DOWNLOADED_DATASETS_PATH", datasets_cache / "downloads")
    monkeypatch.setattr(datasets_config, "EXTRACTED_DATASETS_PATH", datasets_cache / "downloads/extracted")
    return root


__all__ = [
    "DATASET_GITATTRIBUTES",
    "GITATTRIBUTES",
    "HubServer",
    "HubState",
    "client_env",
    "git_blob_id",
    "isolate_hf_caches",
    "lfs_pointer",
    "shared_hub",
    "use_hub",
    "validate_metadata",
]
