"""The local Hub server, driven by the real huggingface_hub client: the behaviour the Hub tests rely on."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.hub_server import GITATTRIBUTES, shared_hub, use_hub

# huggingface_hub's LFS upload hands httpx2 a file as `data=`, which httpx2 deprecates: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@pytest.fixture(scope="module")
def hub():
    return shared_hub()


@pytest.fixture(scope="module")
def users(hub):
    return {
        "carol": hub.state.add_user("carol", orgs=("lab",)),
        "dave": hub.state.add_user("dave"),
        "carol_read": hub.state.add_user("carol", role="read"),
    }


@pytest.fixture
def api(hub, users, monkeypatch):
    from huggingface_hub import HfApi

    use_hub(monkeypatch, hub, users["carol"])
    return HfApi()


def _commit(api, repo_id, files: dict[str, bytes], revision=None, message="update"):
    from huggingface_hub import CommitOperationAdd

    ops = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=c) for p, c in files.items()]
    return api.create_commit(repo_id, ops, commit_message=message, revision=revision)


def test_whoami_and_bad_token(api, users):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    me = api.whoami()
    assert me["name"] == "carol" and me["auth"]["accessToken"]["role"] == "write"
    with pytest.raises(HfHubHTTPError, match="Invalid user token") as info:
        HfApi(token="hf_not_a_real_token").whoami()
    assert info.value.response.status_code == 401


def test_typed_errors(api):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    api.create_repo("carol/typed-errors")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("carol/does-not-exist")
    with pytest.raises(RevisionNotFoundError):
        api.model_info("carol/typed-errors", revision="no-such-branch")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("carol/typed-errors", "missing.json")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("carol/typed-errors", ".gitattributes", revision="no-such-branch")


def test_new_repo_has_initial_commit_with_gitattributes(api, tmp_path):
    from huggingface_hub import hf_hub_download

    api.create_repo("carol/fresh")
    info = api.model_info("carol/fresh")
    assert [s.rfilename for s in info.siblings] == [".gitattributes"]
    path = hf_hub_download("carol/fresh", ".gitattributes", cache_dir=tmp_path)
    assert Path(path).read_text() == GITATTRIBUTES
    assert api.create_repo("carol/fresh", exist_ok=True).repo_id == "carol/fresh"


def test_commits_are_immutable_snapshots_and_branches_resolve(api, tmp_path):
    from huggingface_hub import hf_hub_download

    repo = "carol/snapshots"
    api.create_repo(repo)
    first = _commit(api, repo, {"notes.txt": b"one", "weights.safetensors": b"\x00" * 1000}).oid
    api.create_branch(repo, branch="exp")
    second = _commit(api, repo, {"notes.txt": b"two"}).oid
    _commit(api, repo, {"notes.txt": b"branch"}, revision="exp")

    def read(revision):
        return Path(hf_hub_download(repo, "notes.txt", revision=revision, cache_dir=tmp_path)).read_bytes()

    assert read(first) == b"one"  # by commit sha, after later commits
    assert read(second) == read("main") == b"two"
    assert read("exp") == b"branch"
    refs = api.list_repo_refs(repo)
    assert {b.name for b in refs.branches} == {"main", "exp"}
    assert [c.commit_id for c in api.list_repo_commits(repo)][:2] == [second, first]
    files = {f.path: f for f in api.list_repo_tree(repo, revision=first, recursive=True)}
    assert files["weights.safetensors"].lfs.sha256 == hashlib.sha256(b"\x00" * 1000).hexdigest()
    assert files["notes.txt"].lfs is None
    [info] = api.get_paths_info(repo, ["notes.txt", "absent.txt"], revision=first)
    assert info.path == "notes.txt" and info.size == 3


def test_lfs_goes_through_the_cdn_without_credentials(api, hub, tmp_path):
    from huggingface_hub import hf_hub_download

    repo = "carol/lfs"
    api.create_repo(repo)
    content = bytes(range(256)) * 64
    start = len(hub.state.requests)
    _commit(api, repo, {"model.safetensors": content})
    path = hf_hub_download(repo, "model.safetensors", cache_dir=tmp_path)
    assert Path(path).read_bytes() == content
    cdn = [r for r in hub.state.requests[start:] if r["server"] == "cdn"]
    assert {r["method"] for r in cdn} == {"PUT", "GET"}
    assert not any(r["auth"] for r in cdn), "the token must never leave the Hub's origin"


def test_private_repos_are_invisible_to_others(api, hub, users, tmp_path):
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import RepositoryNotFoundError

    repo = "lab/private"
    api.create_repo(repo, private=True)
    assert api.model_info(repo).private
    for token in (users["dave"], False):
        with pytest.raises(RepositoryNotFoundError):
            HfApi(token=token).model_info(repo)
        with pytest.raises(RepositoryNotFoundError):
            hf_hub_download(repo, ".gitattributes", token=token, cache_dir=tmp_path)


def test_writes_need_a_write_token_for_the_namespace(api, users):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    with pytest.raises(HfHubHTTPError) as info:
        HfApi(token=users["carol_read"]).create_repo("carol/read-only")
    assert info.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as info:
        HfApi(token=users["dave"]).create_repo("lab/not-dave")
    assert info.value.response.status_code == 403


def test_failed_commit_leaves_the_revision_intact(api, hub):
    from huggingface_hub.errors import HfHubHTTPError

    repo = "carol/atomic"
    api.create_repo(repo)
    before = _commit(api, repo, {"a.txt": b"a"}).oid
    hub.state.fail_next_commit(repo)
    with pytest.raises(HfHubHTTPError, match="injected failure"):
        _commit(api, repo, {"a.txt": b"changed", "b.txt": b"new"})
    assert api.model_info(repo).sha == before
    assert hub.state.file(repo, "a.txt") == b"a"


def test_commit_rejects_missing_lfs_object_and_stale_parent(api, hub):
    import base64
    import json

    from huggingface_hub.utils import build_hf_headers, get_session

    repo = "carol/validation"
    api.create_repo(repo)
    head = api.model_info(repo).sha
    url = f"{hub.endpoint}/api/models/{repo}/commit/main"
    headers = {**build_hf_headers(token=api.token), "Content-Type": "application/x-ndjson"}

    def post(*lines):
        return get_session().post(
            url, content=b"".join(json.dumps(x).encode() + b"\n" for x in lines), headers=headers
        )

    missing = {
        "key": "lfsFile",
        "value": {"path": "w.safetensors", "algo": "sha256", "oid": "0" * 64, "size": 3},
    }
    assert post({"key": "header", "value": {"summary": "x"}}, missing).status_code == 422
    stale = {"key": "header", "value": {"summary": "x", "parentCommit": "f" * 40}}
    regular = {
        "key": "file",
        "value": {"path": "a.txt", "content": base64.b64encode(b"a").decode(), "encoding": "base64"},
    }
    assert post(stale, regular).status_code == 412
    assert api.model_info(repo).sha == head


def test_readme_metadata_is_validated_before_upload(api):
    repo = "carol/cards"
    api.create_repo(repo)
    bad = "---\nmodel-index:\n- name: x\n  results:\n  - task: {}\n    dataset: {}\n    metrics: []\n---\ntext\n"
    with pytest.raises(ValueError, match="Invalid metadata in README.md"):
        _commit(api, repo, {"README.md": bad.encode()})
    _commit(api, repo, {"README.md": b"---\nlicense: apache-2.0\ntags: [a]\n---\n# Card\n"})
    assert api.model_info(repo).card_data.license == "apache-2.0"
