"""Round: what one IIR round saw, examined, produced and cost. The GUI's reasoning panel lists
these and run.json / the report store them, so to_dict/from_dict is a stable, validated form."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from inference.json_fields import list_field as _list, need as _need, field as _field


@dataclass
class ExaminedOrgan:
    """An organ whose tokens this round's input carries.

    label_id/name/display: the organ the text named. mask_label/mask_name: the mask the tokens
    came from; differs when a substructure without its own mask fell back to its parent organ.
    abnormal_prob: the auxiliary classifier's P(abnormal) on these tokens (paper Cls); None when the
    model has no organ classifier (a converted M3D-LaMed): shown as NO_CLASSIFIER.
    """

    label_id: int
    name: str
    display: str
    mask_label: int
    mask_name: str
    abnormal_prob: float | None
    n_tokens: int
    fallback: str | None = None  # e.g. "no pancreas_head mask in this case; used pancreas"
    voxels: int = 0  # mask voxels on the model grid


NO_CLASSIFIER = "no organ classifier in this model"


def abnormal_text(prob: float | None, template: str = "P(abnormal) {:.2f}") -> str:
    """How an organ's P(abnormal) reads everywhere (CLI, report, panel): the number, or why there is none."""
    return NO_CLASSIFIER if prob is None else template.format(prob)


def _optional_float(value) -> float | None:
    return None if value is None else float(value)


@dataclass
class SkippedOrgan:
    """An organ named in this round's text (or the question) that no later round examines."""

    name: str
    reason: str
    label_id: int | None = None
    kind: str = ""  # no_mask | round_limit | shared_mask | not_in_table ("" in records before issue 19)


@dataclass
class RoundTimings:
    """Milliseconds and token counts of one round; tokens_per_s is the decode rate."""

    organ_tokens_ms: float = 0.0
    prefill_ms: float = 0.0
    decode_ms: float = 0.0
    prompt_tokens: int = 0  # tokens prefilled this round (new segment, or whole context without cache reuse)
    generated_tokens: int = 0
    context_tokens: int = 0  # tokens in the context after the round
    tokens_per_s: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.organ_tokens_ms + self.prefill_ms + self.decode_ms


@dataclass
class Round:
    """One IIR round (1-based ``index``).

    prompt:         the text this round appended to the context (visual runs shown as <ct> /
                    <organ_feature>); round r's full input is every earlier prompt and text plus this.
    text:           the generated answer.
    token_ids:      the generated ids (stop id included when the round ended on one).
    organs:         organs whose tokens this round's input carries (none in round 1, eq. 4).
    named_organs:   label names the matcher found in this round's text (and the question, round 1).
    next_organs:    label names the next round examines.
    skipped_organs: names this round's text or the question named that will not be examined, with why.
    step:           the task step this round answers (e.g. "T" of a TNM run); each step starts at a
                    round 1 of its own chain (global view, no organ tokens).
    """

    index: int
    prompt: str
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    stop_reason: str = ""
    organs: list[ExaminedOrgan] = field(default_factory=list)
    named_organs: list[str] = field(default_factory=list)
    next_organs: list[str] = field(default_factory=list)
    skipped_organs: list[SkippedOrgan] = field(default_factory=list)
    timings: RoundTimings = field(default_factory=RoundTimings)
    step: str = ""  # the task step (model card) whose chain this round belongs to; "" for one question

    @property
    def mask_labels(self) -> list[int]:
        """Mask label ids this round's organ tokens came from."""
        return [o.mask_label for o in self.organs]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "round") -> "Round":
        """Inverse of to_dict; raises ValueError naming the bad field (``where`` prefixes it)."""
        _need(data, dict, where)
        index = _field(data, "index", int, where)
        organs = [
            ExaminedOrgan(
                label_id=_field(o, "label_id", int, f"{where}.organs[{i}]"),
                name=_field(o, "name", str, f"{where}.organs[{i}]"),
                display=_field(o, "display", str, f"{where}.organs[{i}]"),
                mask_label=_field(o, "mask_label", int, f"{where}.organs[{i}]"),
                mask_name=_field(o, "mask_name", str, f"{where}.organs[{i}]"),
                abnormal_prob=_optional_float(_field(o, "abnormal_prob", (int, float, type(None)), f"{where}.organs[{i}]")),
                n_tokens=_field(o, "n_tokens", int, f"{where}.organs[{i}]"),
                fallback=_field(o, "fallback", (str, type(None)), f"{where}.organs[{i}]", default=None),
                voxels=_field(o, "voxels", int, f"{where}.organs[{i}]", default=0),
            )
            for i, o in enumerate(_list(data, "organs", where))
        ]
        skipped = [
            SkippedOrgan(
                name=_field(s, "name", str, f"{where}.skipped_organs[{i}]"),
                reason=_field(s, "reason", str, f"{where}.skipped_organs[{i}]"),
                label_id=_field(s, "label_id", (int, type(None)), f"{where}.skipped_organs[{i}]", default=None),
                kind=_field(s, "kind", str, f"{where}.skipped_organs[{i}]", default=""),
            )
            for i, s in enumerate(_list(data, "skipped_organs", where))
        ]
        t = data.get("timings", {})
        _need(t, dict, f"{where}.timings")
        timings = RoundTimings(**{
            k: _field(t, k, (int, float), f"{where}.timings", default=getattr(RoundTimings(), k))
            for k in RoundTimings.__dataclass_fields__
        })
        for k in ("prompt_tokens", "generated_tokens", "context_tokens"):
            setattr(timings, k, int(getattr(timings, k)))
        return cls(
            index=index,
            prompt=_field(data, "prompt", str, where),
            text=_field(data, "text", str, where),
            token_ids=[_need(v, int, f"{where}.token_ids[{i}]") for i, v in enumerate(_list(data, "token_ids", where))],
            stop_reason=_field(data, "stop_reason", str, where, default=""),
            organs=organs,
            named_organs=[_need(v, str, f"{where}.named_organs") for v in _list(data, "named_organs", where)],
            next_organs=[_need(v, str, f"{where}.next_organs") for v in _list(data, "next_organs", where)],
            skipped_organs=skipped,
            timings=timings,
            step=_field(data, "step", str, where, default=""),
        )
