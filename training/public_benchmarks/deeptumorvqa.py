"""DeepTumorVQA's question files -> our manifest, multiple choice kept as such.

The format, from the benchmark's public repository (github.com/Schuture/DeepTumorVQA, v2: its dataset
card's "QA record schema" and ``deeptumorvqa/data/loader.py``):

    benchmark/test_qa.json    {"version"..., "num_questions", "question_types", "questions": [record, ...]}
    benchmark/test_qa.jsonl   one record per line
    train/train_qa.csv        one record per row; the header may be spelled "Image ID" (title case,
                              spaces): names are compared lower-cased with spaces as underscores;
                              a row without qid gets "<file stem>_line<N>"
    record: qid, image_id (e.g. BDMAP_00008446), question, answer, mc_question (the question with its
            options "A: ... B: ... C: ... D: ..."), correct_option ("A"), question_type (one of
            recognition, measurement, visual reasoning, medical reasoning), question_subtype (42 of them),
            organ, lesion, spacing, shape, sex, age, requires_tools

Each record becomes one sample of task "benchmark", subtask "deeptumorvqa": the options parsed out of
``mc_question`` (our question then reads "<stem> Options: A. .. B. .."), final answer
"<correct_option>. <option>"; or, with ``fmt="freeform"``, the open question and its answer. The CT is
the site's copy of the images: ``<images>/<image_id>/ct.nii.gz`` (the benchmark's ``ct/`` folder and
AbdomenAtlas' layout), ``<images>/<image_id>.nii.gz`` or ``<images>/<image_id>/`` (a DICOM folder). Masks:
``<masks_dir>/<image_id>.nii.gz`` when given and present, else none (segmented on the fly). The chain
is one round with the answer: the benchmark gives no reasoning, and nothing is invented.

A bad record (missing field, options that cannot be parsed, a correct option that is not one of them, an
answer that names another option, a CT not in the site's copy, a duplicate qid) is reported with its
line number and skipped; the manifest is written once, atomically, only if some record was imported.
"""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from inference.errors import InputError

from ..eval_metrics import normalize
from ..manifest import BENCHMARK_TASK, CONCLUSION, LETTERS, ChainRound, Sample, write_manifest

NAME = "DeepTumorVQA"
SUBTASK = "deeptumorvqa"
CATEGORIES = ("recognition", "measurement", "visual reasoning", "medical reasoning")  # leaderboard order
REQUIRED = {"mc": ("qid", "image_id", "mc_question", "correct_option", "question_type", "question_subtype"),
            "freeform": ("qid", "image_id", "question", "answer", "question_type", "question_subtype")}
_MAX_SHOWN = 20


class RecordError(ValueError):
    """A record that is skipped, with the reason."""


def _key(name: str) -> str:
    return re.sub(r"\s+", "_", name.strip().lower())


def read_records(path: str | Path) -> list[tuple[int, dict]]:
    """(line number, record) of every question in a .json (nested), .jsonl or .csv question file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read the question file: {exc}") from None
    if path.suffix.lower() == ".csv":
        try:
            reader = csv.DictReader(io.StringIO(text, newline=""))  # quoted fields may span lines
            rows = [(reader.line_num, {_key(k): v for k, v in row.items() if k is not None}) for row in reader]
        except csv.Error as exc:
            raise InputError(path, f"not a valid CSV: {exc}") from None
        return rows
    if path.suffix.lower() == ".jsonl":
        out = []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    out.append((n, json.loads(line)))
                except json.JSONDecodeError as exc:
                    out.append((n, {"__error__": f"not valid JSON ({exc.msg} at column {exc.colno})"}))
        return out
    return _nested_records(path, text)


def _nested_records(path: Path, text: str) -> list[tuple[int, dict]]:
    """test_qa.json: the records of its "questions" list, each with the line it starts on."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise InputError(path, "expected an object with a 'questions' list (DeepTumorVQA's test_qa.json)")
    dec = json.JSONDecoder()
    m = re.search(r'"questions"\s*:\s*\[', text)
    pos, lines = (m.end() if m else 0), []
    for _ in data["questions"]:  # walk the array again, only to learn where each record starts
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        try:
            _, end = dec.raw_decode(text, pos)
        except json.JSONDecodeError:
            lines = []
            break
        lines.append(text.count("\n", 0, pos) + 1)
        pos = end
    if len(lines) != len(data["questions"]):  # "questions" also appears earlier in a string: number by index
        return [(i, q) for i, q in enumerate(data["questions"], start=1)]
    return list(zip(lines, data["questions"]))


def parse_options(mc_question: str) -> tuple[str, list[str]]:
    """("stem", ["opt A", "opt B", ...]) from "stem A: x B: y C: z D: w" (also "A. x", "(A) x", newlines)."""
    marks, pos = [], 0
    for letter in LETTERS:
        m = re.compile(rf"(?<![A-Za-z0-9(])\(?{letter}\s*[:.)]\s+").search(mc_question, pos)
        if not m:
            break
        marks.append(m)
        pos = m.end()
    if len(marks) < 2:
        raise RecordError("'mc_question' has no options 'A: ... B: ...'")
    stem = mc_question[:marks[0].start()].strip()
    options = [mc_question[a.end():(b.start() if b else len(mc_question))].strip()
               for a, b in zip(marks, marks[1:] + [None])]
    if not stem or not all(options):
        raise RecordError("'mc_question' has an empty question or option")
    return stem, options


def find_ct(images: Path, image_id: str) -> Path | None:
    for p in (images / image_id / "ct.nii.gz", images / f"{image_id}.nii.gz", images / f"{image_id}.nii",
              images / image_id / "ct.nii"):
        if p.is_file():
            return p
    folder = images / image_id
    return folder if folder.is_dir() and any(folder.iterdir()) else None


@dataclass
class ImportReport:
    path: str
    imported: int = 0
    skipped: list[str] = field(default_factory=list)  # "line N (qid): reason"
    per_category: dict[str, int] = field(default_factory=dict)
    written: str | None = None

    def summary(self) -> str:
        cats = ", ".join(f"{k} {v}" for k, v in self.per_category.items())
        lines = [f"{self.path}: {self.imported} questions imported ({cats}), {len(self.skipped)} skipped"]
        lines += [f"  {s}" for s in self.skipped[:_MAX_SHOWN]]
        if len(self.skipped) > _MAX_SHOWN:
            lines.append(f"  ... {len(self.skipped) - _MAX_SHOWN} more")
        return "\n".join(lines)


class DeepTumorVQAImporter:
    def __init__(self, images: Path, out: Path, masks_dir: Path | None = None, fmt: str = "mc"):
        if fmt not in REQUIRED:
            raise ValueError(f"format must be one of {', '.join(REQUIRED)}")
        self.images, self.out, self.masks_dir, self.fmt = images, out, masks_dir, fmt

    def _rel(self, p: Path) -> str:
        try:
            return str(p.resolve().relative_to(self.out.parent.resolve()))
        except ValueError:
            return str(p.resolve())

    def sample(self, rec: dict) -> Sample:
        if "__error__" in rec:
            raise RecordError(rec["__error__"])
        if not isinstance(rec, dict):
            raise RecordError("not a JSON object")
        missing = [k for k in REQUIRED[self.fmt] if not str(rec.get(k) or "").strip()]
        if missing:
            raise RecordError(f"missing {', '.join(missing)}")
        qid, image_id = str(rec["qid"]).strip(), str(rec["image_id"]).strip()
        category = str(rec["question_type"]).strip().lower()
        if category not in CATEGORIES:
            raise RecordError(f"question_type {rec['question_type']!r} is not one of {', '.join(CATEGORIES)}")
        if self.fmt == "mc":
            question, options, final = self._multiple_choice(rec)
        else:
            question, options, final = str(rec["question"]).strip(), None, str(rec["answer"]).strip()
        ct = find_ct(self.images, image_id)
        if ct is None:
            raise RecordError(f"no CT for {image_id} in {self.images} "
                              f"(looked for {image_id}/ct.nii.gz, {image_id}.nii.gz, a DICOM folder {image_id}/)")
        masks = None
        if self.masks_dir is not None and (self.masks_dir / f"{image_id}.nii.gz").is_file():
            masks = self._rel(self.masks_dir / f"{image_id}.nii.gz")
        answer = f"{CONCLUSION}{final}."
        bench = {"name": NAME, "qid": qid, "category": category, "subcategory": str(rec["question_subtype"]).strip()}
        if self.fmt == "mc":
            bench["correct_option"] = final[0]
        return Sample(id=f"{SUBTASK}_{qid}", case_id=image_id, ct=self._rel(ct), masks=masks, parts=None,
                      task=BENCHMARK_TASK, subtask=SUBTASK, question=question, options=options, answer=answer,
                      final_answer=final, roi_organs=(), organ_labels={}, chain=(ChainRound(answer, ()),),
                      benchmark=bench, root=self.out.parent)

    @staticmethod
    def _multiple_choice(rec: dict) -> tuple[str, tuple[str, ...], str]:
        stem, options = parse_options(str(rec["mc_question"]))
        letter = str(rec["correct_option"]).strip().upper().rstrip(".:)")
        idx = LETTERS.find(letter) if len(letter) == 1 else -1
        if not 0 <= idx < len(options):
            raise RecordError(f"correct_option {rec['correct_option']!r} is not one of "
                              f"{', '.join(LETTERS[:len(options)])}")
        answer = normalize(str(rec.get("answer") or ""))
        named = [i for i, o in enumerate(options) if normalize(o) == answer]
        if answer and named and idx not in named:
            raise RecordError(f"answer {rec['answer']!r} is option {LETTERS[named[0]]}, "
                              f"but correct_option is {letter}")
        listing = " ".join(f"{LETTERS[k]}. {o}" for k, o in enumerate(options))
        return f"{stem} Options: {listing}", tuple(options), f"{letter}. {options[idx]}"


def import_deeptumorvqa(questions: str | Path, images: str | Path, out: str | Path,
                        masks_dir: str | Path | None = None, fmt: str = "mc", limit: int | None = None,
                        dry_run: bool = False) -> ImportReport:
    """Import every record; write the manifest unless ``dry_run``. Raises when none can be imported."""
    questions, images, out = Path(questions), Path(images), Path(out)
    if not images.is_dir():
        raise InputError(images, "image folder not found (the site's copy of DeepTumorVQA's CTs)")
    imp = DeepTumorVQAImporter(images, out, Path(masks_dir) if masks_dir else None, fmt)
    report, samples, seen = ImportReport(str(questions)), [], {}
    for line, rec in read_records(questions)[:limit or None]:
        if isinstance(rec, dict) and not str(rec.get("qid") or "").strip() and "__error__" not in rec:
            rec = rec | {"qid": f"{questions.stem}_line{line}"}  # train_qa.csv may carry no qid
        qid = str(rec.get("qid", "")).strip() if isinstance(rec, dict) else ""
        try:
            if qid and qid in seen:
                raise RecordError(f"duplicate qid (first on line {seen[qid]})")
            s = imp.sample(rec)
        except RecordError as exc:
            report.skipped.append(f"{questions} line {line}" + (f" ({qid})" if qid else "") + f": {exc}")
            continue
        seen[qid] = line
        samples.append(s)
        cat = s.benchmark["category"]
        report.per_category[cat] = report.per_category.get(cat, 0) + 1
    report.imported = len(samples)
    report.per_category = {c: report.per_category[c] for c in CATEGORIES if c in report.per_category}
    if not samples:
        raise InputError(questions, "no question could be imported:\n" + report.summary())
    if not dry_run:
        write_manifest(out, samples)
        report.written = str(out)
    return report
