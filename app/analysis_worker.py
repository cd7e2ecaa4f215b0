"""TumorChain analysis off the GUI thread, with the model kept loaded between runs.

The worker thread calls ``inference.pipeline.Pipeline.analyze_volume`` with the IIR settings of
this run (taken from the user's settings when it was asked for) and callbacks that become
queued Qt signals. Token deltas are batched (``TokenBatcher``): the first delta of a
round goes out at once (time to first token), later ones at most every ``interval_s``, so a
fast model cannot flood the GUI thread with one signal per token. Cancel sets the job's
threading.Event; the decoder stops within a token.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, Signal

from app.job_runner import JobRunner
from app.settings import AppSettings
from inference.errors import InputError, ModelError

STREAM_INTERVAL_S = 0.05


class TokenBatcher:
    """Collects text deltas of one run; ``emit(round, text)`` gets them in batches. Qt-free."""

    def __init__(self, emit: Callable[[int, str], None], interval_s: float = STREAM_INTERVAL_S,
                 clock: Callable[[], float] = time.perf_counter):
        self.emit, self.interval_s, self.clock = emit, interval_s, clock
        self._round, self._buf, self._last = 0, [], 0.0
        self.first_token_at: float | None = None

    def add(self, round_index: int, delta: str) -> None:
        if round_index != self._round:
            self.flush()
            self._round, self._last = round_index, 0.0  # a new round's first delta goes out at once
        self._buf.append(delta)
        now = self.clock()
        if self.first_token_at is None:
            self.first_token_at = now
        if now - self._last >= self.interval_s:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        if self._buf:
            self.emit(self._round, "".join(self._buf))
            self._buf = []
            self._last = self.clock() if now is None else now


@dataclass(frozen=True)
class AnalysisJob:
    """What to analyse: the case in memory and the typed question, or the task (and organ) whose
    questions the model card declares."""

    ct: object  # CTVolume
    masks: object  # OrganMasks
    question: str | None  # a typed question; None: the task's questions from the model card
    task: str | None
    case_id: str | None
    mask_source: str | None
    allow_non_ct: bool = False  # the reader confirmed analyzing a volume that does not look like CT
    organ: str | None = None  # narrows the task (display or label name)
    # stores the finished run (and its new review) on the worker thread: three fsynced writes that
    # held the GUI thread 30-100 ms at the end of every analysis; raises StorageError when it cannot
    keep: Callable[[object], None] | None = None


def model_problem(settings: AppSettings) -> str | None:
    """Why no analysis can start with these settings (None when the model folder looks usable)."""
    if not settings.model_dir:
        return ("No model folder is set. Choose one in Edit > Settings (Model folder): the shipped "
                "demo model lives in resources/demo_model once it is built.")
    folder = Path(settings.model_dir).expanduser()
    if not (folder / "config.json").is_file():
        return (f"{folder}: no TumorChain model found here (no config.json). "
                "Choose another model folder in Edit > Settings.")
    return None


class AnalysisWorker(QObject):
    """Signals (GUI thread): round_started(index, prompt), text(index, delta batch),
    round_done(Round), model_loaded(str description); the runner's progress, succeeded(RunRecord),
    failed(message), cancelled(message), finished()."""

    round_started = Signal(int, str)
    text = Signal(int, str)
    round_done = Signal(object)
    model_loaded = Signal(str)

    def __init__(self, parent=None, runner=JobRunner):
        super().__init__(parent)
        self.runner = runner("analysis", self)
        self._pipeline = None
        self._pipeline_key: tuple | None = None
        self._lock = threading.Lock()  # the pipeline is only touched on the worker thread; guards swaps
        self.storage_problem: str | None = None  # why the last run could not be stored (read when it ends)

    @property
    def busy(self) -> bool:
        return self.runner.busy

    @property
    def model_is_loaded(self) -> bool:
        return self._pipeline is not None

    def preload(self, settings: AppSettings) -> bool:
        """Load the model in the background so that the first Analyze starts at once."""
        if model_problem(settings) is not None:
            return False
        return self.runner.start(lambda progress, cancel: self._ensure_pipeline(settings, progress) and None)

    def analyze(self, job: AnalysisJob, settings: AppSettings) -> bool:
        if model_problem(settings) is not None:
            raise ModelError(model_problem(settings))
        return self.runner.start(lambda progress, cancel: self._run(job, settings, progress, cancel))

    def cancel(self) -> None:
        self.runner.cancel()

    # -- worker thread ---------------------------------------------------------------------------
    def _ensure_pipeline(self, settings: AppSettings, progress) -> float:
        """The pipeline for these settings (loading the model when needed); returns load ms."""
        from inference.pipeline import Pipeline

        key = (str(Path(settings.model_dir).expanduser().resolve()), settings.device)
        if self._pipeline is not None and self._pipeline_key == key:
            return 0.0
        progress(0.0, f"loading the model from {Path(settings.model_dir).name}")
        t0 = time.perf_counter()
        with self._lock:
            self._pipeline = None  # free the old model before the new one is read
            _leave_a_core_for_the_gui()
            self._pipeline = Pipeline.from_model_dir(key[0], device=settings.torch_device())
            self._pipeline_key = key
        info = self._pipeline.model_info()
        self.model_loaded.emit(f"{info.name} ({info.llm_type}, {info.dtype}, {info.device})")
        return (time.perf_counter() - t0) * 1000.0

    def _run(self, job: AnalysisJob, settings: AppSettings, progress, cancel: threading.Event):
        from inference.iir.decoding import SamplingConfig
        from inference.iir.loop import IIRSettings
        from inference.pipeline import Callbacks

        t0 = time.perf_counter()
        load_ms = self._ensure_pipeline(settings, progress)
        iir = IIRSettings(max_rounds=settings.max_rounds,
                          sampling=SamplingConfig(max_new_tokens=settings.max_new_tokens))
        batcher = TokenBatcher(self.text.emit)

        def on_round(rnd) -> None:
            batcher.flush()  # the round's last words arrive before the round itself
            self.round_done.emit(rnd)

        callbacks = Callbacks(progress=progress, on_round_start=self.round_started.emit,
                              on_text=batcher.add, on_round=on_round)
        record = self._pipeline.analyze_volume(job.ct, job.masks, job.question, task=job.task, organ=job.organ,
                                               case_id=job.case_id,
                                               mask_source=job.mask_source, callbacks=callbacks, cancel=cancel,
                                               allow_non_ct=job.allow_non_ct, settings=iir)
        batcher.flush()
        record.timings["model_load_ms"] = load_ms
        if batcher.first_token_at is not None:
            record.timings["first_token_ms"] = (batcher.first_token_at - t0) * 1000.0
        record.timings["analysis_ms"] = (time.perf_counter() - t0) * 1000.0
        self.storage_problem = None
        if job.keep is not None:
            try:
                job.keep(record)
            except InputError as exc:  # StorageError: the run is shown all the same, read-only
                self.storage_problem = str(exc)
        return record

    def shutdown(self) -> None:
        self.runner.shutdown()


def _leave_a_core_for_the_gui() -> None:
    """On a CPU box, torch would take every core and starve the GUI thread; keep one free."""
    import torch

    cores = os.cpu_count() or 1
    if torch.get_num_threads() >= cores and cores > 1:
        torch.set_num_threads(cores - 1)
