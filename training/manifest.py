"""The JSONL manifest of VQA samples (one JSON object per line) and its validator.

A line (paths relative to the manifest's folder):
  id, case_id, ct, masks (organs file, or null: segment on the fly, cached by CT content), parts (file or null),
  task ("localization" | "attributes" | "tnm" | "report"), subtask (see SUBTASKS),
  question, options (list of option texts or null for open questions),
  answer (the final chain-of-thought text ending "Thus, the answer is X."), final_answer (X;
  "<letter>. <option>" for multiple choice), roi_organs (label names examined, in order),
  organ_labels ({label name: 0 normal | 1 abnormal}),
  chain ([{"answer": round text ending "Thus, the answer is ...", "attend": [label names the
  next round examines]}]; the last round's answer is ``answer`` and it attends nothing new),
  benchmark (optional; only on questions imported from a public benchmark, task "benchmark"):
  {"name", "qid", "category", "subcategory", ...}: the benchmark's own id and categories, which
  evaluation reports beside Table 1's columns (training/public_benchmarks/).

``load_manifest`` reads and checks every line and raises one InputError that names the file
and each bad line's number and problem.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from inference.atomic_write import atomic_write
from inference.errors import InputError
from inference.labels import merged_labels

SUBTASKS: dict[str, tuple[str, ...]] = {
    "localization": ("organ_position", "tumor_position", "segment_location"),
    "attributes": ("shape", "boundary", "density", "count", "others"),
    "tnm": ("T", "N", "M"),
    "report": ("report",),
    # questions imported from public benchmarks: scored in the benchmark's own categories, not Table 1's
    "benchmark": ("deeptumorvqa",),
}
BENCHMARK_TASK = "benchmark"
TABLE1_SUBTASKS = tuple(s for task, group in SUBTASKS.items() if task != BENCHMARK_TASK for s in group)
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
CONCLUSION = "Thus, the answer is "
MAX_ERRORS_SHOWN = 20
_ROUND_END = re.compile(r"the answer is .+\.\s*$", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class ChainRound:
    answer: str
    attend: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"answer": self.answer, "attend": list(self.attend)}


@dataclass(frozen=True)
class Sample:
    """One VQA sample; ``root`` (not serialised) is the manifest's folder."""

    id: str
    case_id: str
    ct: str
    masks: str | None
    parts: str | None
    task: str
    subtask: str
    question: str
    options: tuple[str, ...] | None
    answer: str
    final_answer: str
    roi_organs: tuple[str, ...]
    organ_labels: dict[str, int]
    chain: tuple[ChainRound, ...]
    benchmark: dict | None = None  # a public benchmark's qid and categories (imported questions only)
    root: Path = field(default=Path("."), compare=False)

    @property
    def ct_file(self) -> Path:
        return self.root / self.ct

    @property
    def masks_file(self) -> Path | None:
        return None if self.masks is None else self.root / self.masks

    @property
    def parts_file(self) -> Path | None:
        return None if self.parts is None else self.root / self.parts

    def to_dict(self) -> dict:
        return {
            "id": self.id, "case_id": self.case_id, "ct": self.ct, "masks": self.masks, "parts": self.parts,
            "task": self.task, "subtask": self.subtask, "question": self.question,
            "options": None if self.options is None else list(self.options),
            "answer": self.answer, "final_answer": self.final_answer, "roi_organs": list(self.roi_organs),
            "organ_labels": dict(self.organ_labels), "chain": [r.to_dict() for r in self.chain],
        } | ({} if self.benchmark is None else {"benchmark": dict(self.benchmark)})


def _str_list(value, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"'{what}' must be a list of strings")
    return value


def sample_problems(d: dict) -> list[str]:
    """Everything wrong with one parsed line (empty list = valid)."""
    if not isinstance(d, dict):
        return ["not a JSON object"]
    problems = []
    required = {"id": str, "case_id": str, "ct": str, "task": str, "subtask": str,
                "question": str, "answer": str, "final_answer": str, "roi_organs": list,
                "organ_labels": dict, "chain": list}
    for key, typ in required.items():
        if key not in d:
            problems.append(f"missing key '{key}'")
        elif not isinstance(d[key], typ) or (typ is str and not d[key].strip()):
            problems.append(f"'{key}' must be a non-empty {typ.__name__}")
    for key in ("masks", "parts", "options"):
        if key not in d:
            problems.append(f"missing key '{key}' (use null when there is none)")
    if problems:
        return problems
    table = merged_labels()
    if d["task"] not in SUBTASKS:
        problems.append(f"unknown task '{d['task']}' (one of {', '.join(SUBTASKS)})")
    elif d["subtask"] not in SUBTASKS[d["task"]]:
        problems.append(f"subtask '{d['subtask']}' does not belong to task '{d['task']}'")
    for key in ("masks", "parts"):
        if d[key] is not None and not (isinstance(d[key], str) and d[key].strip()):
            problems.append(f"'{key}' must be a file path or null")
    problems += _benchmark_problems(d)
    final = d["final_answer"]
    if not d["answer"].rstrip().endswith(f"{CONCLUSION}{final}."):
        problems.append(f"'answer' must end with \"{CONCLUSION}{final}.\"")
    opts = d["options"]
    if opts is not None:
        if (not isinstance(opts, list) or not 2 <= len(opts) <= len(LETTERS)
                or not all(isinstance(o, str) and o.strip() for o in opts)):
            problems.append("'options' must be null or a list of 2 to 26 non-empty strings")
        elif final not in {f"{LETTERS[i]}. {o}" for i, o in enumerate(opts)}:
            problems.append(f"'final_answer' {final!r} is not '<letter>. <option>' of the options")
    try:
        roi = _str_list(d["roi_organs"], "roi_organs")
        unknown = [n for n in roi if n not in table]
        if unknown:
            problems.append(f"unknown label names in 'roi_organs': {unknown}")
        for name, value in d["organ_labels"].items():
            if name not in table:
                problems.append(f"unknown label name '{name}' in 'organ_labels'")
            if value not in (0, 1) or isinstance(value, bool):
                problems.append(f"'organ_labels'['{name}'] must be 0 or 1")
        problems += _chain_problems(d["chain"], d["answer"], roi, table)
    except ValueError as exc:
        problems.append(str(exc))
    return problems


def _benchmark_problems(d: dict) -> list[str]:
    bench = d.get("benchmark")
    if bench is None:
        return ["task 'benchmark' needs a 'benchmark' object (name, qid, category, subcategory)"] \
            if d["task"] == BENCHMARK_TASK else []
    if d["task"] != BENCHMARK_TASK:
        return [f"'benchmark' belongs only to task '{BENCHMARK_TASK}'"]
    if not isinstance(bench, dict) or not all(isinstance(bench.get(k), str) and bench[k].strip()
                                              for k in ("name", "qid", "category", "subcategory")):
        return ["'benchmark' must be an object with non-empty strings name, qid, category, subcategory"]
    return []


def _chain_problems(chain: list, answer: str, roi: list[str], table) -> list[str]:
    if not chain:
        return ["'chain' must have at least one round"]
    problems, attended = [], []
    for r, rnd in enumerate(chain, start=1):
        if not isinstance(rnd, dict) or not isinstance(rnd.get("answer"), str) or "attend" not in rnd:
            problems.append(f"chain round {r} must be {{'answer': str, 'attend': [label names]}}")
            continue
        attend = _str_list(rnd["attend"], f"chain[{r}].attend")
        if not _ROUND_END.search(rnd["answer"]):
            problems.append(f"chain round {r} answer must end with 'the answer is ...'")
        unknown = [n for n in attend if n not in table]
        if unknown:
            problems.append(f"chain round {r} attends unknown label names {unknown}")
        repeated = [n for n in attend if n in attended]
        if repeated:
            problems.append(f"chain round {r} attends already examined {repeated}")
        attended += attend
    if not problems:
        if chain[-1]["answer"] != answer:
            problems.append("the last chain round's answer must equal 'answer'")
        if chain[-1]["attend"]:
            problems.append("the last chain round must attend nothing (the loop stops there)")
        if attended != roi:
            problems.append(f"'roi_organs' {roi} must list the attended organs in order {attended}")
    return problems


def sample_from_dict(d: dict, root: Path) -> Sample:
    return Sample(
        id=d["id"], case_id=d["case_id"], ct=d["ct"], masks=d["masks"], parts=d["parts"], task=d["task"],
        subtask=d["subtask"], question=d["question"], options=None if d["options"] is None else tuple(d["options"]),
        answer=d["answer"], final_answer=d["final_answer"], roi_organs=tuple(d["roi_organs"]),
        organ_labels={k: int(v) for k, v in d["organ_labels"].items()},
        chain=tuple(ChainRound(r["answer"], tuple(r["attend"])) for r in d["chain"]),
        benchmark=None if d.get("benchmark") is None else dict(d["benchmark"]), root=root)


def load_manifest(path: str | Path, check_files: bool = False) -> list[Sample]:
    """Read and validate a manifest; ``check_files`` also requires the referenced files."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read manifest: {exc}") from exc
    root = path.parent
    samples, errors, ids = [], [], {}
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"line {n}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        problems = sample_problems(d)
        if not problems:
            if d["id"] in ids:
                problems.append(f"duplicate id '{d['id']}' (first on line {ids[d['id']]})")
            ids.setdefault(d["id"], n)
            if check_files:
                for key in ("ct", "masks", "parts"):
                    if d[key] is not None and not (root / d[key]).is_file():
                        problems.append(f"'{key}' file {d[key]} does not exist")
        if problems:
            errors.append(f"line {n}: " + "; ".join(problems))
            continue
        samples.append(sample_from_dict(d, root))
    if errors:
        shown = errors[:MAX_ERRORS_SHOWN]
        more = len(errors) - len(shown)
        tail = f" | ... {more} more" if more else ""
        raise InputError(path, f"{len(errors)} bad line(s): " + " | ".join(shown) + tail)
    if not samples:
        raise InputError(path, "manifest has no samples")
    return samples


def write_manifest(path: str | Path, samples: list[Sample]) -> Path:
    """Write samples as JSONL after checking each (a sample that would not load is a bug).

    Atomic (inference/atomic_write.py): a failed write (disk full, file too large, read-only
    folder) raises StorageError naming ``path`` and leaves any previous manifest there untouched,
    so a training run never reads half a manifest."""
    path = Path(path)
    out = []
    for s in samples:
        d = s.to_dict()
        problems = sample_problems(d)
        if problems:
            raise ValueError(f"sample {s.id} is invalid: {'; '.join(problems)}")
        out.append(json.dumps(d, ensure_ascii=False))

    def _lines(fh) -> None:
        for line in out:
            fh.write(line.encode("utf-8") + b"\n")

    return atomic_write(path, _lines, what="manifest")
