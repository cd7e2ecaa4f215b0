"""run.json: the canonical, versioned record of one TumorChain run (schema ``tumorchain.run/1``).

What the CLI writes, the GUI shows and the report exports: which case (identity and content
hash), which masks (backend and hash), which model (folder and weight hash), every IIR Round,
the conclusion and the timings. Reading validates every field and names the bad one.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


from inference.atomic_write import atomic_write
from inference.errors import InputError, read_json_file
from inference.iir.conclusion import Conclusion
from inference.json_fields import field as _field, list_field as _list, need as _need
from inference.iir.rounds import Round

SCHEMA = "tumorchain.run/1"
STOP_REASONS = ("no_new_organ", "round_limit")


@dataclass
class CaseInfo:
    """The CT: where it came from and what it is (no patient name or id: run.json travels)."""

    case_id: str
    source_path: str
    content_hash: str  # CTVolume.content_hash(): SHA-256 of HU voxels + affine
    shape: list[int]
    spacing_mm: list[float]
    modality: str = "CT"
    series_uid: str = ""
    series_description: str = ""
    study_instance_uid: str = ""
    # the CT plausibility check (inference/ct_io/ct_plausibility.py) and whether the user
    # analyzed a volume that failed it anyway: {"looks_like_ct", "reasons", ..., "override"}
    ct_check: dict[str, Any] = field(default_factory=dict)


@dataclass
class SegmentationInfo:
    backend: str  # "totalsegmentator" | "precomputed:<file>" | "synthetic" ...
    mask_hash: str  # OrganMasks.content_hash(): SHA-256 of organ and part label maps + grid
    mask_source: str | None = None  # the --masks file, if one was given
    labels_present: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelInfo:
    path: str
    name: str
    weight_hash: str  # model_weight_hash(): SHA-256 over the folder's safetensors files
    weight_files: list[str] = field(default_factory=list)
    llm_type: str = ""
    dtype: str = ""
    device: str = ""
    preprocessing: str = ""  # how the CT became the model input (inference.preprocess.SCHEME_DESCRIPTIONS)
    organ_classifier: bool = True  # False: rounds carry no P(abnormal) ("no organ classifier in this model")
    notes: list[str] = field(default_factory=list)  # e.g. what a converter left out of the model


@dataclass
class RunSettings:
    max_rounds: int
    include_negated: bool
    max_new_tokens: int
    temperature: float
    top_p: float
    top_k: int
    seed: int
    cache_mode: str = "shared"


@dataclass
class RunRecord:
    case: CaseInfo
    segmentation: SegmentationInfo
    model: ModelInfo
    question: str
    task: str | None
    settings: RunSettings
    rounds: list[Round]
    stop_reason: str
    conclusion: Conclusion
    timings: dict[str, float] = field(default_factory=dict)  # load_ct_ms, segmentation_ms, preprocess_ms, encode_ms, iir_ms, total_ms
    warnings: list[str] = field(default_factory=list)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    tool_version: str = ""
    schema: str = SCHEMA
    # issue 19 (absent from older records): the task's questions as the model card declares them
    # (inference/iir/task_plan.StepResult dicts), the card the run used, the CT against the card's
    # training domain {"in_domain", "reasons", "declared"}, and whether a typed question follows a
    # trained form {"typed", "form", "trained"}
    steps: list[dict[str, Any]] = field(default_factory=list)
    model_card: dict[str, Any] = field(default_factory=dict)
    domain: dict[str, Any] = field(default_factory=dict)
    question_check: dict[str, Any] = field(default_factory=dict)
    # P(abnormal) of the examined organs and all their present sub-regions (iir/classifier_screen.py)
    classifier_screen: dict[str, float] = field(default_factory=dict)

    # -- writing -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d = {
            "schema": self.schema,
            "created": self.created,
            "tool_version": self.tool_version,
            "case": asdict(self.case),
            "segmentation": asdict(self.segmentation),
            "model": asdict(self.model),
            "task": self.task,
            "question": self.question,
            "settings": asdict(self.settings),
            "rounds": [r.to_dict() for r in self.rounds],
            "stop_reason": self.stop_reason,
            "conclusion": self.conclusion.to_dict(),
            "timings": dict(self.timings),
            "warnings": list(self.warnings),
            "steps": [dict(st) for st in self.steps],
            "model_card": dict(self.model_card),
            "domain": dict(self.domain),
            "question_check": dict(self.question_check),
            "classifier_screen": dict(self.classifier_screen),
        }
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def save(self, path: str | Path) -> Path:
        """Write atomically and durably (inference.atomic_write: a half-written run.json never
        replaces a good one, and the new one is on disk when this returns); StorageError naming
        the file when it cannot be written."""
        return atomic_write(path, self.to_json() + "\n", what="run record")

    # -- reading -------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> "RunRecord":
        path = Path(path)
        return cls.from_dict(read_json_file(path, "run record"), source=path)

    @classmethod
    def from_dict(cls, data: Any, source: str | Path | None = None) -> "RunRecord":
        """Validate and build; any problem raises InputError naming ``source`` and the field."""
        try:
            return cls._from_dict(data)
        except ValueError as exc:
            raise InputError(source, f"not a valid {SCHEMA} record: {exc}") from None

    @classmethod
    def _from_dict(cls, d: Any) -> "RunRecord":
        _need(d, dict, "record")
        schema = _field(d, "schema", str, "record")
        if schema != SCHEMA:
            family = schema.split("/")[0]
            if family == SCHEMA.split("/")[0]:
                raise ValueError(f"schema {schema!r} is from another version of TumorChain; this one reads {SCHEMA!r}")
            raise ValueError(f"schema {schema!r} is not a TumorChain run record")
        c = _field(d, "case", dict, "record")
        case = CaseInfo(
            case_id=_field(c, "case_id", str, "case"),
            source_path=_field(c, "source_path", str, "case"),
            content_hash=_hex(_field(c, "content_hash", str, "case"), "case.content_hash"),
            shape=[_need(v, int, "case.shape[]") for v in _field(c, "shape", list, "case")],
            spacing_mm=[float(_need(v, (int, float), "case.spacing_mm[]")) for v in _field(c, "spacing_mm", list, "case")],
            modality=_field(c, "modality", str, "case", default="CT"),
            series_uid=_field(c, "series_uid", str, "case", default=""),
            series_description=_field(c, "series_description", str, "case", default=""),
            study_instance_uid=_field(c, "study_instance_uid", str, "case", default=""),
            ct_check=_field(c, "ct_check", dict, "case", default={}),
        )
        if len(case.shape) != 3 or len(case.spacing_mm) != 3:
            raise ValueError("case.shape and case.spacing_mm need 3 entries each")
        s = _field(d, "segmentation", dict, "record")
        seg = SegmentationInfo(
            backend=_field(s, "backend", str, "segmentation"),
            mask_hash=_hex(_field(s, "mask_hash", str, "segmentation"), "segmentation.mask_hash"),
            mask_source=_field(s, "mask_source", (str, type(None)), "segmentation", default=None),
            labels_present=[_need(v, str, "segmentation.labels_present[]") for v in _list(s, "labels_present", "segmentation")],
            details=_field(s, "details", dict, "segmentation", default={}),
        )
        m = _field(d, "model", dict, "record")
        model = ModelInfo(
            path=_field(m, "path", str, "model"),
            name=_field(m, "name", str, "model"),
            weight_hash=_hex(_field(m, "weight_hash", str, "model"), "model.weight_hash"),
            weight_files=[_need(v, str, "model.weight_files[]") for v in _list(m, "weight_files", "model")],
            llm_type=_field(m, "llm_type", str, "model", default=""),
            dtype=_field(m, "dtype", str, "model", default=""),
            device=_field(m, "device", str, "model", default=""),
            preprocessing=_field(m, "preprocessing", str, "model", default=""),
            organ_classifier=_field(m, "organ_classifier", bool, "model", default=True),
            notes=[_need(v, str, "model.notes[]") for v in _field(m, "notes", list, "model", default=[])],
        )
        st = _field(d, "settings", dict, "record")
        settings = RunSettings(
            max_rounds=_field(st, "max_rounds", int, "settings"),
            include_negated=_field(st, "include_negated", bool, "settings"),
            max_new_tokens=_field(st, "max_new_tokens", int, "settings"),
            temperature=float(_field(st, "temperature", (int, float), "settings")),
            top_p=float(_field(st, "top_p", (int, float), "settings")),
            top_k=_field(st, "top_k", int, "settings"),
            seed=_field(st, "seed", int, "settings"),
            cache_mode=_field(st, "cache_mode", str, "settings", default="shared"),
        )
        rounds = [Round.from_dict(r, where=f"rounds[{i}]") for i, r in enumerate(_field(d, "rounds", list, "record"))]
        if not rounds:
            raise ValueError("rounds: a run has at least one round")
        if [r.index for r in rounds] != list(range(1, len(rounds) + 1)):
            raise ValueError(f"rounds: indices must be 1..{len(rounds)} in order, got {[r.index for r in rounds]}")
        stop = _field(d, "stop_reason", str, "record")
        if stop not in STOP_REASONS:
            raise ValueError(f"stop_reason: {stop!r} is not one of {', '.join(STOP_REASONS)}")
        cc = _field(d, "conclusion", dict, "record")
        conclusion = Conclusion(
            reasoning=_field(cc, "reasoning", str, "conclusion"),
            answer=_field(cc, "answer", str, "conclusion"),
            found=_field(cc, "found", bool, "conclusion"),
            summary=_field(cc, "summary", str, "conclusion", default=""),
        )
        timings = _field(d, "timings", dict, "record", default={})
        for k, v in timings.items():
            _need(v, (int, float), f"timings.{k}")
        return cls(
            case=case, segmentation=seg, model=model,
            question=_field(d, "question", str, "record"),
            task=_field(d, "task", (str, type(None)), "record", default=None),
            settings=settings, rounds=rounds, stop_reason=stop, conclusion=conclusion,
            timings={k: float(v) for k, v in timings.items()},
            warnings=[_need(w, str, "warnings[]") for w in _list(d, "warnings", "record")],
            created=_field(d, "created", str, "record", default=""),
            tool_version=_field(d, "tool_version", str, "record", default=""),
            schema=schema,
            steps=[_need(st, dict, "steps[]") for st in _list(d, "steps", "record")],
            model_card=_field(d, "model_card", dict, "record", default={}),
            domain=_field(d, "domain", dict, "record", default={}),
            question_check=_field(d, "question_check", dict, "record", default={}),
            classifier_screen={k: float(_need(v, (int, float), f"classifier_screen.{k}"))
                               for k, v in _field(d, "classifier_screen", dict, "record", default={}).items()},
        )


def _hex(value: str, where: str) -> str:
    if len(value) != 64 or any(ch not in "0123456789abcdef" for ch in value):
        raise ValueError(f"{where}: expected a 64-digit lowercase SHA-256, got {value[:80]!r}")
    return value
