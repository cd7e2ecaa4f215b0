"""The headless case flow: load CT -> organ masks -> preprocess -> encode once -> IIR -> RunRecord.

Used by the command line and by the GUI's worker thread: long steps report
``progress(fraction, message)`` and stop with inference.errors.Cancelled when ``cancel`` is set.
A Pipeline keeps one model loaded across cases and remembers the last cases' encodings, so a
second question on the same case skips the vision encoder. IIR settings (round limit, sampling)
go in per call (``settings=``); the ones given at construction are only the default, so one
loaded model serves callers with different settings without being reconfigured between runs.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from inference.ct_volume import CTVolume
from inference.errors import InputError, ModelError, NotCTError, raise_if_cancelled
from inference.iir.features import GridMasks, ModelCaseFeatures
from inference.iir.generator import ModelRoundGenerator
from inference.iir.loop import IIRLoop, IIRSettings, Matcher
from inference.iir.prompt_style import prompt_style
from inference.iir.prompts import task_question
from inference.iir.task_plan import run_task
from inference.iir.classifier_screen import discordance_warning, regions_to_screen
from inference.iir.screen_thresholds import load_screen_thresholds
from inference.iir.unseen import unseen_warnings
from inference.model.model_card import ModelCard, domain_check, load_model_card
from inference.iir.rounds import Round
from inference.run_record import CaseInfo, ModelInfo, RunRecord, RunSettings, SegmentationInfo
from inference.weight_hash import model_weight_hash
from inference.segmentation.organ_masks import OrganMasks

ProgressFn = Callable[[float, str], None]
# share of the progress bar per step: load, segment, preprocess, encode, reasoning
_SPANS = {"load": (0.0, 0.05), "segment": (0.05, 0.35), "preprocess": (0.35, 0.4), "encode": (0.4, 0.5),
          "iir": (0.5, 1.0)}


@dataclass
class AnalysisRequest:
    """One question about one CT. Give ``question`` or ``task`` (+ optional ``organ`` display name).

    masks_path: a label NIfTI to use instead of running ``segmentation`` (a backend name of
    inference.segmentation.make_expert, with ``segmentation_options``). ``from_path`` fills the
    CT and masks from a case folder the way the window opens it.
    """

    ct_path: Path
    question: str | None = None
    task: str | None = None
    organ: str | None = None
    masks_path: Path | None = None
    parts_path: Path | None = None  # substructure labels beside masks_path
    mask_scheme: str = "auto"  # label scheme of masks_path: auto, totalseg or merged
    segmentation: str = "totalsegmentator"
    segmentation_options: dict[str, Any] = field(default_factory=dict)
    case_id: str | None = None
    allow_non_ct: bool = False  # analyze a volume that does not look like CT (recorded in run.json)
    series_uid: str | None = None  # which series of a DICOM folder (default: the largest CT series)

    @classmethod
    def from_path(cls, path: str | Path, masks: str | Path | None = None, parts: str | Path | None = None,
                  scheme: str | None = None, own_masks: bool = True, **kwargs) -> "AnalysisRequest":
        """A CT file, DICOM folder or case folder (with its own masks unless ``own_masks`` is
        False) -> a request."""
        from inference.case_folder import resolve_case

        case = resolve_case(path, masks, parts, scheme, own_masks)
        return cls(ct_path=case.ct, masks_path=case.organs, parts_path=case.parts, mask_scheme=case.scheme,
                   **kwargs)

    def question_text(self) -> str | None:
        """The typed question, or None for a task (its model card's questions are asked)."""
        if self.question is not None and self.task is not None:
            raise InputError(None, "give a question or a task, not both")
        if self.question is not None:
            if not self.question.strip():
                raise InputError(None, "the question is empty")
            return self.question.strip()
        if self.task is None:
            raise InputError(None, "give a question or a task")
        task_question(self.task)  # an unknown task fails here
        return None


@dataclass
class Callbacks:
    """All optional. on_text streams (round index, text delta); on_round gets each finished Round."""

    progress: ProgressFn | None = None
    on_round_start: Callable[[int, str], None] | None = None
    on_text: Callable[[int, str], None] | None = None
    on_round: Callable[[Round], None] | None = None


def load_model(model_dir: str | Path, device: str | None = None, dtype: str | None = None):
    """A TumorChainModel from a saved folder (safetensors only, nothing downloaded)."""
    from inference.model.modeling_tumorchain import TumorChainModel  # heavy import, only when needed

    path = Path(model_dir).expanduser()
    if not path.is_dir():
        raise ModelError(f"{path}: model folder not found")
    return TumorChainModel.from_pretrained(path, device=device, dtype=dtype)


class Pipeline:
    """Runs requests against one loaded model. ``matcher`` defaults to inference.labels.organs_named."""

    def __init__(self, model, model_dir: str | Path, settings: IIRSettings = IIRSettings(),
                 matcher: Matcher | None = None, encodings_kept: int = 2):
        self.model = model
        self.model_dir = Path(model_dir)
        self.settings = settings  # the default of analyze() and analyze_volume()
        self.matcher = matcher
        self._encodings: OrderedDict[tuple[str, str], tuple[Any, Any]] = OrderedDict()
        # the same cases' organ tokens: in crop mode (a converted M3D-LaMed) each is a ViT pass over the
        # organ's box, seconds on a CPU; a second question about the case reuses them
        self._organ_tokens: dict[tuple[str, str], dict[int, Any]] = {}
        self._encodings_kept = encodings_kept
        self._model_info: ModelInfo | None = None
        self._card: ModelCard | None = None
        # read with the model, so a malformed file is refused before any analysis starts
        self.screen_thresholds = load_screen_thresholds(self.model_dir)

    @classmethod
    def from_model_dir(cls, model_dir: str | Path, settings: IIRSettings = IIRSettings(),
                       device: str | None = None, dtype: str | None = None, **kwargs) -> "Pipeline":
        return cls(load_model(model_dir, device, dtype), model_dir, settings, **kwargs)

    # -- the whole flow ------------------------------------------------------------------------

    def analyze(self, request: AnalysisRequest, callbacks: Callbacks | None = None,
                cancel: threading.Event | None = None, settings: IIRSettings | None = None) -> RunRecord:
        callbacks = callbacks or Callbacks()
        question = request.question_text()  # user mistakes surface before any heavy work
        t0 = time.perf_counter()
        _progress(callbacks, "load", 0.0, f"loading {request.ct_path}")
        from inference.ct_io import load_ct
        ct = load_ct(request.ct_path, request.series_uid)
        require_ct(ct, request.allow_non_ct)  # before segmentation: refuse early, not after minutes
        t_load = time.perf_counter()
        _check(cancel)
        masks, mask_source = self.segment(ct, request, callbacks, cancel)
        t_seg = time.perf_counter()
        record = self.analyze_volume(ct, masks, question, task=request.task, organ=request.organ,
                                     case_id=request.case_id,
                                     mask_source=mask_source, callbacks=callbacks, cancel=cancel,
                                     allow_non_ct=request.allow_non_ct, settings=settings)
        record.timings = {"load_ct_ms": (t_load - t0) * 1000.0, "segmentation_ms": (t_seg - t_load) * 1000.0,
                          **record.timings, "total_ms": (time.perf_counter() - t0) * 1000.0}
        return record

    def segment(self, ct: CTVolume, request: AnalysisRequest, callbacks: Callbacks,
                cancel: threading.Event | None) -> tuple[OrganMasks, str | None]:
        from inference.segmentation.expert import make_expert

        lo, hi = _SPANS["segment"]
        sub = (lambda f, msg: callbacks.progress(lo + (hi - lo) * f, msg)) if callbacks.progress else None
        if request.masks_path is not None:
            expert = make_expert("precomputed", path=Path(request.masks_path), scheme=request.mask_scheme,
                                 parts_path=request.parts_path)
            source = str(request.masks_path)
        else:
            expert = make_expert(request.segmentation, **request.segmentation_options)
            source = None
        return expert.segment(ct, sub, cancel), source

    def analyze_volume(self, ct: CTVolume, masks: OrganMasks, question: str | None, *, task: str | None = None,
                       organ: str | None = None, case_id: str | None = None, mask_source: str | None = None,
                       callbacks: Callbacks | None = None, cancel: threading.Event | None = None,
                       allow_non_ct: bool = False, settings: IIRSettings | None = None) -> RunRecord:
        """The model part for a CT and masks already in memory (the GUI has both); ``settings``
        default to the pipeline's. ``question`` None: the ``task`` (narrowed to ``organ``) is asked
        as the questions the model card declares (inference/iir/task_plan.py), each its own chain.

        allow_non_ct: analyze even when the volume does not look like CT (the user's override,
        recorded in run.json); otherwise such a volume raises NotCTError before any work."""
        require_ct(ct, allow_non_ct)
        callbacks = callbacks or Callbacks()
        s = settings or self.settings
        if getattr(getattr(self.model, "device", None), "type", None) == "cpu":
            from inference.model.devices import fit_cpu_threads

            fit_cpu_threads()  # threads on busy cores stall every forward (devices.fit_cpu_threads)
        from inference.preprocess import preprocess

        t0 = time.perf_counter()
        m_hash = masks.content_hash()
        key = (ct.content_hash(), m_hash)
        cached = key in self._encodings
        _progress(callbacks, "preprocess", 0.0, "preparing the model input")
        if cached:
            self._encodings.move_to_end(key)
            model_input, encoding = self._encodings[key]
            t_pre = t_enc = time.perf_counter()
        else:
            # the model's own input grid (M3D-sized models: 32x256x256, the paper's)
            model_input = preprocess(ct, masks, shape=tuple(self.model.config.vision.img_size),
                                     scheme=self.model.config.preprocessing)
            t_pre = time.perf_counter()
            _check(cancel)
            _progress(callbacks, "encode", 0.0, "encoding the CT")
            encoding = self._encode(model_input)
            t_enc = time.perf_counter()
            self._encodings[key] = (model_input, encoding)
            while len(self._encodings) > self._encodings_kept:
                self._organ_tokens.pop(self._encodings.popitem(last=False)[0], None)
        _check(cancel)
        features = ModelCaseFeatures(self.model, encoding, GridMasks(model_input.organs, model_input.parts),
                                     volume=model_input, organ_cache=self._organ_tokens.setdefault(key, {}))
        style = prompt_style(self.model.config, self.model.tokenizer)
        card = self.card
        rounds: list[Round] = []
        n_steps = len(card.steps(task)) + 1 if question is None and task else 1
        n = s.max_rounds * n_steps

        def on_round(rnd: Round) -> None:
            _progress(callbacks, "iir", rnd.index / n, f"round {rnd.index} done")
            if callbacks.on_round is not None:
                callbacks.on_round(rnd)

        def ask(step_id: str, text: str):
            """One chain with a fresh context; its rounds continue the run's numbering."""
            offset = len(rounds)
            generator = ModelRoundGenerator.for_model(self.model, sampling=s.sampling, cache_mode=s.cache_mode)
            loop = IIRLoop(generator, features, s, template=style.template, matcher=self.matcher,
                           table=masks.table, tokenizer=self.model.tokenizer, first_round=style.first_round)

            def renumbered(rnd: Round) -> None:
                rnd.index += offset
                rnd.step = step_id
                rounds.append(rnd)
                on_round(rnd)

            start = (lambda i, p: callbacks.on_round_start(i + offset, p)) if callbacks.on_round_start else None
            stream = (lambda i, d: callbacks.on_text(i + offset, d)) if callbacks.on_text else None
            return loop.run(text, on_round_start=start, on_text=stream, on_round=renumbered, cancel=cancel)

        _progress(callbacks, "iir", 0.0, "reasoning")
        present = [masks.table.by_id(i).name for i in masks.present_ids() if i in masks.table]
        if question is None:
            if task is None:
                raise InputError(None, "give a question or a task")
            outcome = run_task(card, task, organ, ask, masks.table, present)
            question_text, steps, conclusion, stop_reason = (outcome.question, outcome.steps, outcome.conclusion,
                                                             outcome.stop_reason)
            form = {"typed": False, "form": None, "trained": not card.is_default}
        else:
            result = ask("question", question)
            question_text, steps, conclusion, stop_reason = question, [], result.conclusion, result.stop_reason
            matched = card.match_question(question)
            form = {"typed": True, "form": matched or None, "trained": bool(matched)}
        question_warnings = _question_warnings(card, question, form)
        screen = self._screen(features, masks, rounds)
        discordant = discordance_warning(conclusion, screen, lambda n: masks.table.by_name(n).display,
                                         self.screen_thresholds)
        t_iir = time.perf_counter()
        _progress(callbacks, "iir", 1.0, "done")
        domain = domain_check(card, ct)
        return RunRecord(
            case=_case_info(ct, case_id, allow_non_ct),
            segmentation=SegmentationInfo(
                backend=masks.backend, mask_hash=m_hash, mask_source=mask_source,
                labels_present=[masks.table.by_id(i).name for i in masks.present_ids() if i in masks.table],
                details=_jsonable(masks.details),
            ),
            model=self.model_info(),
            question=question_text,
            task=task,
            settings=RunSettings(
                max_rounds=s.max_rounds, include_negated=s.include_negated,
                max_new_tokens=s.sampling.max_new_tokens, temperature=s.sampling.temperature,
                top_p=s.sampling.top_p, top_k=s.sampling.top_k, seed=s.sampling.seed, cache_mode=s.cache_mode,
            ),
            rounds=rounds,
            stop_reason=stop_reason,
            conclusion=conclusion,
            # a case encoded before (same CT and masks) shows preprocess_ms and encode_ms near 0
            timings={"preprocess_ms": (t_pre - t0) * 1000.0, "encode_ms": (t_enc - t_pre) * 1000.0,
                     "iir_ms": (t_iir - t_enc) * 1000.0},
            warnings=_run_warnings(ct, masks, model_input, allow_non_ct) + question_warnings
            + [f"Outside the model's training domain: {r}" for r in domain] + unseen_warnings(rounds)
            + ([discordant] if discordant else []),
            tool_version=_tool_version(),
            steps=[st.to_dict() for st in steps],
            model_card=card.summary(),
            domain={"in_domain": not domain, "reasons": domain, "declared": card.domain.source},
            question_check=form,
            classifier_screen=screen,
        )

    # -- pieces --------------------------------------------------------------------------------

    def _screen(self, features, masks, rounds) -> dict[str, float]:
        """P(abnormal) of the examined organs and their present sub-regions ({} without a classifier)."""
        if not getattr(self.model, "has_organ_classifier", True):
            return {}
        t = masks.table
        out = {}
        for i in regions_to_screen(rounds, [i for i in masks.present_ids() if i in t], t.parent_or_self):
            if not features.mask_voxels(i):  # a sliver the resampling to the model grid lost
                continue
            p = features.abnormal_prob(features.organ_tokens(i))
            if p is not None:
                out[t.by_id(i).name] = round(p, 4)
        return out

    @torch.inference_mode()
    def _encode(self, model_input):
        try:
            return self.model.encode_case(model_input.volume)
        except torch.OutOfMemoryError as exc:
            raise ModelError(f"out of memory while encoding the CT: {exc}") from None

    @property
    def card(self) -> ModelCard:
        """The model folder's card (or the documented default), read once."""
        if self._card is None:
            self._card = load_model_card(self.model_dir)
        return self._card

    def model_info(self) -> ModelInfo:
        if self._model_info is None:
            from inference.preprocess import SCHEME_DESCRIPTIONS

            digest, files = model_weight_hash(self.model_dir)
            llm = self.model.llm
            param = next(llm.parameters())
            cfg = self.model.config
            scheme = getattr(cfg, "preprocessing", "tumorchain")
            self._model_info = ModelInfo(
                path=str(self.model_dir), name=self.model_dir.name, weight_hash=digest, weight_files=files,
                llm_type=str(getattr(llm.config, "model_type", "")),
                dtype=str(param.dtype).replace("torch.", ""), device=str(param.device),
                preprocessing=f"{scheme}: {SCHEME_DESCRIPTIONS[scheme]}",
                organ_classifier=bool(getattr(self.model, "has_organ_classifier", True)),
                notes=list(getattr(cfg, "source_notes", [])),
            )
        return self._model_info


def require_ct(ct: CTVolume, allow_non_ct: bool) -> None:
    """Refuse to analyze a volume that does not look like CT, unless the user overrides."""
    check = ct.plausibility()
    if check.looks_like_ct or allow_non_ct:
        return
    raise NotCTError(ct.source_path, "does not look like a CT in Hounsfield units: " + "; ".join(check.reasons)
                     + ". It can still be viewed. The model reads CT only; to analyze it anyway, pass "
                     "--allow-non-ct (command line) or confirm 'Analyze anyway' in the window; the run "
                     "records the override")


def _run_warnings(ct: CTVolume, masks: OrganMasks, model_input, allow_non_ct: bool) -> list[str]:
    """Everything the reader of run.json must know: load, mask and preprocessing warnings."""
    out = list(ct.warnings) + list(masks.details.get("warnings", ()) if isinstance(masks.details, dict) else ())
    check = ct.plausibility()
    if not check.looks_like_ct and allow_non_ct:
        out.append("analyzed although the volume does not look like CT (the user's override): "
                   + "; ".join(check.reasons))
    out += list(getattr(model_input, "warnings", ()))
    return list(dict.fromkeys(out))  # once each, in order


def _question_warnings(card: ModelCard, question: str | None, form: dict) -> list[str]:
    if card.is_default:
        return [f"Model card: {card.note}"] if card.note else []
    if question is not None and not form["trained"]:
        return ["The question is not one of the forms the model was trained on (see its model card): "
                "its answer is unreliable"]
    return []


def _case_info(ct: CTVolume, case_id: str | None, allow_non_ct: bool = False) -> CaseInfo:
    src = Path(ct.source_path)
    check = ct.plausibility()
    return CaseInfo(
        case_id=case_id or case_id_for(src),
        source_path=str(src),
        content_hash=ct.content_hash(),
        shape=list(ct.shape),
        spacing_mm=[round(s, 6) for s in ct.spacing],
        modality=ct.modality,
        series_uid=ct.series_uid,
        series_description=ct.series_description,
        study_instance_uid=ct.study.study_instance_uid,
        ct_check={**check.as_dict(), "override": bool(allow_non_ct and not check.looks_like_ct)},
    )


def case_id_for(path: Path) -> str:
    """A case id from a file or folder name: "case_0001.nii.gz" -> "case_0001"."""
    name = Path(path).name
    for suffix in (".nii.gz", ".nii", ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _progress(cb: Callbacks, step: str, fraction: float, message: str) -> None:
    if cb.progress is not None:
        lo, hi = _SPANS[step]
        cb.progress(lo + (hi - lo) * min(max(fraction, 0.0), 1.0), message)


_check = raise_if_cancelled


def _jsonable(value: Any) -> Any:
    """Backend details as plain JSON (paths -> str, tuples -> lists, others -> str)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _tool_version() -> str:
    try:
        from importlib.metadata import version
        return version("tumorchain-workstation")
    except Exception:  # running from a source tree without an install
        return "0+unknown"
