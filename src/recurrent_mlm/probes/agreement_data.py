"""Subject-verb agreement sets in their official layouts, read into one item type.

* **Linzen et al. (2016)**, the filtered test set as colorlessgreenRNNs distributes it: line-aligned
  `subj_agr_filtered.text` (the sentence, ending in `<eos>`) and `subj_agr_filtered.gold` (tab-separated:
  index of the verb, correct form, wrong form, number of attractors).
* **Gulordava et al. (2018)**, English `generated.tab`: two rows per sentence (the correct form, then the
  wrong one) with `pattern`, `constr_id`, `sent_id`, `correct_number`, `form`, `class`, `type` (`original` or
  `generated`: a nonce sentence), `prefix`, `n_attr`, `len_prefix` and `sent` (the whole sentence; the
  word at position `len_prefix` is the verb slot). We read the words from `sent` (the `prefix` column has
  `<unk>` where their LSTM's vocabulary lacked a word).
* **Marvin & Linzen (2018)** minimal pairs flattened to a TSV (`template`, `condition`, `sentence_good`,
  `sentence_bad`, `extra`). Agreement and reflexive pairs differ in one word, which is the target. NPI
  items differ in the licensor instead: the target is the NPI `ever`, scored in the grammatical context
  against the intrusive-licensor context (`sentence_bad`) and against the unlicensed one (`extra`), as M&L
  compare them.

Items whose correct and wrong forms are the same word are *broken* (four of Linzen's lines): they are kept,
marked, counted and never scored. The CC BY-NC sets (Linzen, Gulordava) are read from a path and never
shipped; `data/agreement_demo/` holds an MIT-licensed sample of the Marvin & Linzen pairs.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cli import UsageError

EOS = "<eos>"
UNK = "<unk>"
DATASETS = ("linzen", "gulordava", "marvin_linzen")
NPI_WORD = "ever"
DEMO_DIR = Path(__file__).resolve().parents[3] / "data" / "agreement_demo"

# Singular/plural present-tense pairs that are not "+s" / "+es" / "y -> ies".
_IRREGULAR_SINGULAR = {"is": "are", "has": "have", "was": "were", "does": "do", "doesn't": "don't"}


@dataclass(frozen=True)
class AgreementItem:
    """One test item. The model sees `words` with the word at `target` masked (it is never shown, whatever
    it is) and prefers `correct` or `wrong` there. With `contrast` set (NPIs), `correct == wrong` is the
    target word and the comparison is between two contexts instead: `words` (grammatical) vs `contrast`."""

    dataset: str
    index: int  # row of the item in its source (line of Linzen's files, pair of Gulordava's rows, M&L row)
    words: tuple[str, ...]
    target: int
    correct: str
    wrong: str
    attractors: int | None = None
    group: str | None = None  # M&L template, Gulordava pattern
    condition: str | None = None  # M&L condition (NPIs: "<condition>/intrusive" or "/ungrammatical")
    category: str = "agreement"  # "agreement", "reflexive" or "npi"
    nonce: bool | None = None  # Gulordava: a generated (nonce) sentence
    number: str | None = None  # "singular" or "plural": the number of the correct form, when known
    contrast: tuple[str, ...] | None = None

    @property
    def broken(self) -> bool:
        return self.contrast is None and self.correct == self.wrong

    @property
    def key(self) -> str:
        """Stable identifier within a run: dataset, row and (M&L) condition."""
        suffix = f":{self.condition}" if self.dataset == "marvin_linzen" else ""
        return f"{self.dataset}:{self.index}{suffix}"


def verb_number(correct: str, wrong: str) -> str | None:
    """"singular" or "plural" for the correct form of an English present-tense pair, None if it cannot tell."""
    a, b = correct.lower(), wrong.lower()

    def s_forms(base: str) -> set[str]:
        forms = {base + "s", base + "es"}
        if base.endswith("y"):
            forms.add(base[:-1] + "ies")
        return forms

    if _IRREGULAR_SINGULAR.get(a) == b or a in s_forms(b):
        return "singular"
    if _IRREGULAR_SINGULAR.get(b) == a or b in s_forms(a):
        return "plural"
    return None


def _words(sentence: str) -> tuple[str, ...]:
    words = sentence.split()
    if words and words[-1] == EOS:
        words = words[:-1]
    return tuple(words)


def _find(path: str | os.PathLike, names: Iterable[str], what: str, flag: str) -> Path:
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        for name in names:
            found = sorted(path.rglob(name))
            if found:
                return found[0]
        raise UsageError(f"{flag} {path}: no {what} ({' or '.join(names)}) in that folder; give the file.")
    raise UsageError(f"{flag} {path} does not exist; give the {what} or its folder.")


def read_linzen(path: str | os.PathLike) -> list[AgreementItem]:
    """Linzen et al.'s filtered set: `path` is `subj_agr_filtered.gold`, `.text`, or their folder."""
    found = _find(path, ["subj_agr_filtered.gold"], "Linzen test set", "--linzen")
    stem = found.with_suffix("")
    gold_path, text_path = stem.with_suffix(".gold"), stem.with_suffix(".text")
    for p in (gold_path, text_path):
        if not p.is_file():
            raise UsageError(f"--linzen: {p} is missing; the set needs the line-aligned .text and .gold files.")
    gold = gold_path.read_text(encoding="utf-8").splitlines()
    text = text_path.read_text(encoding="utf-8").splitlines()
    if len(gold) != len(text):
        raise UsageError(f"--linzen: {gold_path.name} has {len(gold)} lines but {text_path.name} has {len(text)}; they must align.")
    items = []
    for line, (g, t) in enumerate(zip(gold, text)):
        fields = g.split("\t")
        if len(fields) < 4:
            raise UsageError(f"--linzen: {gold_path}, line {line + 1}: expected 4 tab-separated fields (index, correct, wrong, attractors).")
        target, correct, wrong, attractors = int(fields[0]), fields[1], fields[2], int(fields[3])
        words = _words(t)
        if not 0 <= target < len(words):
            raise UsageError(f"--linzen: {text_path}, line {line + 1}: verb index {target} is outside the sentence.")
        items.append(
            AgreementItem(
                dataset="linzen",
                index=line,
                words=words,
                target=target,
                correct=correct,
                wrong=wrong,
                attractors=attractors,
                number=verb_number(correct, wrong),
            )
        )
    return items


def read_gulordava(path: str | os.PathLike) -> list[AgreementItem]:
    """Gulordava et al.'s English `generated.tab` (or its folder): one item per sentence, pairing its
    correct-form row with the wrong-form row that follows it."""
    found = _find(path, ["generated.tab"], "Gulordava generated.tab", "--gulordava")
    with open(found, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    needed = {"pattern", "constr_id", "sent_id", "correct_number", "form", "class", "type", "n_attr", "len_prefix", "sent"}
    if not rows or not needed <= set(rows[0]):
        missing = sorted(needed - set(rows[0] if rows else {}))
        raise UsageError(f"--gulordava {found}: not a generated.tab (missing columns: {', '.join(missing)}).")
    items = []
    for pair, start in enumerate(range(0, len(rows) - 1, 2)):
        first, second = rows[start], rows[start + 1]
        same = all(first[k] == second[k] for k in ("pattern", "constr_id", "sent_id"))
        if not same or {first["class"], second["class"]} != {"correct", "wrong"}:
            raise UsageError(
                f"--gulordava {found}: rows {start + 2} and {start + 3} are not the correct/wrong pair of one "
                "sentence; the file must keep its two rows per sentence together."
            )
        good, bad = (first, second) if first["class"] == "correct" else (second, first)
        words = _words(good["sent"])
        target = int(good["len_prefix"])
        if not 0 <= target < len(words):
            raise UsageError(f"--gulordava {found}: row {start + 2}: len_prefix {target} is outside the sentence.")
        items.append(
            AgreementItem(
                dataset="gulordava",
                index=pair,
                words=words,
                target=target,
                correct=good["form"],
                wrong=bad["form"],
                attractors=int(good["n_attr"]),
                group=good["pattern"],
                nonce=good["type"] != "original",
                number={"sing": "singular", "plur": "plural"}.get(good["correct_number"]),
            )
        )
    return items


def _open_text(path: Path):
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _ml_category(template: str) -> str:
    if "npi" in template:
        return "npi"
    if "reflexive" in template:
        return "reflexive"
    return "agreement"


def iter_marvin_linzen_rows(path: Path) -> Iterator[dict[str, str]]:
    with _open_text(path) as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        needed = {"template", "condition", "sentence_good", "sentence_bad"}
        if reader.fieldnames is None or not needed <= set(reader.fieldnames):
            raise UsageError(
                f"--marvin_linzen {path}: expected a TSV with columns template, condition, sentence_good, "
                "sentence_bad (and extra)."
            )
        yield from reader


def read_marvin_linzen(path: str | os.PathLike, unscorable: list | None = None) -> list[AgreementItem]:
    """Marvin & Linzen's pairs (`*.tsv` or `*.tsv.gz`, or their folder). Pairs that differ in more or other
    than one word (and are not NPIs) cannot be scored by one masked position: they are appended to
    `unscorable` (when given) as `(row, template, condition)` and left out."""
    found = _find(path, ["*pairs*.tsv", "*pairs*.tsv.gz"], "Marvin & Linzen pairs TSV", "--marvin_linzen")
    items = []
    for row_index, row in enumerate(iter_marvin_linzen_rows(found)):
        template, condition = row["template"], row["condition"]
        good, bad = tuple(row["sentence_good"].split()), tuple(row["sentence_bad"].split())
        category = _ml_category(template)
        number = {"sing": "singular", "plur": "plural"}.get(condition.split("_")[0]) if category != "npi" else None
        if category == "npi":
            extra = tuple((row.get("extra") or "").split())
            target = good.index(NPI_WORD) if NPI_WORD in good else -1
            for name, other in (("intrusive", bad), ("ungrammatical", extra)):
                if not other:
                    continue
                if target < 0 or len(other) != len(good) or other[target] != NPI_WORD:
                    if unscorable is not None:
                        unscorable.append((row_index, template, f"{condition}/{name}"))
                    continue
                items.append(
                    AgreementItem(
                        dataset="marvin_linzen",
                        index=row_index,
                        words=good,
                        target=target,
                        correct=NPI_WORD,
                        wrong=NPI_WORD,
                        group=template,
                        condition=f"{condition}/{name}",
                        category="npi",
                        contrast=other,
                    )
                )
            continue
        differ = [i for i in range(len(good)) if i < len(bad) and good[i] != bad[i]]
        if len(good) != len(bad) or len(differ) != 1:
            if unscorable is not None:
                unscorable.append((row_index, template, condition))
            continue
        target = differ[0]
        items.append(
            AgreementItem(
                dataset="marvin_linzen",
                index=row_index,
                words=good,
                target=target,
                correct=good[target],
                wrong=bad[target],
                group=template,
                condition=condition,
                category=category,
                number=number,
            )
        )
    return items


def cap_per_condition(items: list[AgreementItem], limit: int | None, seed: int = 0) -> list[AgreementItem]:
    """At most `limit` items per (template, condition), a fixed random choice (the same for every model),
    kept in file order. Marvin & Linzen's ~160k pairs take minutes for large models; their conditions are
    balanced, so a capped set keeps every condition's weight equal."""
    if limit is None:
        return items
    by_condition: dict[tuple, list[int]] = {}
    for position, item in enumerate(items):
        by_condition.setdefault((item.group, item.condition), []).append(position)
    keep = set()
    for (group, condition), positions in sorted(by_condition.items()):
        if len(positions) <= limit:
            keep.update(positions)
            continue
        rng = np.random.default_rng([seed, sum(map(ord, f"{group}|{condition}"))])
        keep.update(positions[i] for i in rng.choice(len(positions), size=limit, replace=False))
    return [item for position, item in enumerate(items) if position in keep]


@dataclass
class AgreementSets:
    """The items of each dataset that was given, with what could not be read into items."""

    items: dict[str, list[AgreementItem]]
    sources: dict[str, str]
    unscorable: dict[str, int]  # M&L pairs that differ in more than one word (not NPIs)


def load_agreement_sets(
    *,
    linzen: str | os.PathLike | None = None,
    gulordava: str | os.PathLike | None = None,
    marvin_linzen: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    max_pairs_per_condition: int | None = None,
) -> AgreementSets:
    """Read the sets given by path; `data_dir` finds any of them below a folder by their file names. With
    nothing given, the bundled demo sample `data/agreement_demo/` (Marvin & Linzen, MIT)."""
    paths = {"linzen": linzen, "gulordava": gulordava, "marvin_linzen": marvin_linzen}
    if data_dir is not None:
        root = Path(data_dir)
        if not root.is_dir():
            raise UsageError(f"--data_dir {root} is not a folder.")
        patterns = {"linzen": ["subj_agr_filtered.gold"], "gulordava": ["generated.tab"], "marvin_linzen": ["*pairs*.tsv", "*pairs*.tsv.gz"]}
        for name, names in patterns.items():
            if paths[name] is None and any(next(root.rglob(n), None) for n in names):
                paths[name] = root
        if all(v is None for v in paths.values()):
            raise UsageError(
                f"--data_dir {root}: found none of subj_agr_filtered.gold, generated.tab, *pairs*.tsv(.gz) below it."
            )
    if all(v is None for v in paths.values()):
        if not DEMO_DIR.is_dir():
            raise UsageError("no agreement data given; pass --linzen, --gulordava, --marvin_linzen or --data_dir.")
        paths["marvin_linzen"] = DEMO_DIR
    readers = {"linzen": read_linzen, "gulordava": read_gulordava}
    items, sources, unscorable = {}, {}, {}
    for name in DATASETS:
        if paths[name] is None:
            continue
        if name == "marvin_linzen":
            skipped: list = []
            read = read_marvin_linzen(paths[name], unscorable=skipped)
            items[name] = cap_per_condition(read, max_pairs_per_condition)
            unscorable[name] = len(skipped)
        else:
            items[name] = readers[name](paths[name])
        sources[name] = str(paths[name])
    return AgreementSets(items=items, sources=sources, unscorable=unscorable)


def sample_marvin_linzen(
    source: str | os.PathLike, destination: str | os.PathLike, per_condition: int = 12, seed: int = 2018
) -> int:
    """Write a stratified sample of the Marvin & Linzen pairs (`per_condition` rows of every template x
    condition, a fixed random choice, in file order) as a TSV in the same layout; returns the rows written.
    This is how `data/agreement_demo/marvin_linzen_2018_pairs_sample.tsv` was made."""
    rows = list(iter_marvin_linzen_rows(Path(source)))
    by_condition: dict[tuple[str, str], list[int]] = {}
    for i, row in enumerate(rows):
        by_condition.setdefault((row["template"], row["condition"]), []).append(i)
    rng = np.random.default_rng(seed)
    chosen = sorted(
        i
        for key in sorted(by_condition)
        for i in (by_condition[key] if len(by_condition[key]) <= per_condition
                  else rng.choice(by_condition[key], size=per_condition, replace=False).tolist())
    )
    columns = ["template", "condition", "sentence_good", "sentence_bad", "extra"]
    with open(destination, "w", encoding="utf-8", newline="") as handle:
        handle.write("\t".join(columns) + "\n")
        for i in chosen:
            handle.write("\t".join(rows[i].get(c) or "" for c in columns) + "\n")
    return len(chosen)


__all__ = [
    "AgreementItem",
    "AgreementSets",
    "DATASETS",
    "DEMO_DIR",
    "cap_per_condition",
    "load_agreement_sets",
    "read_gulordava",
    "read_linzen",
    "read_marvin_linzen",
    "sample_marvin_linzen",
    "verb_number",
]
