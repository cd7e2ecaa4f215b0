"""The workstation's logic, GUI-free (3D Slicer's Logic beside thin widgets): it runs the workers
doing the long work and puts their results into the case model (app/case_model.py: the case,
its masks, the run on screen, its review and drafts), which the views and panels observe.

Widgets call its methods and listen to the model's events and to its signals about the work
(busy, progress, live rounds, errors); it changes the viewer only through the model and the
SceneState. Settings come from the shared SettingsStore, read once when a step starts. Every
long step (load, segmentation, analysis, export) runs on a worker thread; a step that fails or
is cancelled leaves the case, the run and the review as they were. Runs, reviews and unsaved
edit-box drafts are kept per case (case_store.py), so a case opened again, also after a crash,
comes back as it was left. When the store cannot be written (disk
full, read-only folder) the run is still shown, the error is reported, and a review decision that
could not be saved is not applied (``review_failed``): nothing on screen claims to be saved
that is not.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from app.analysis_worker import AnalysisJob, AnalysisWorker, model_problem
from app.case_model import CaseModel
from app.case_store import CaseStore
from app.job_runner import JobRunner
from app.load_worker import CaseLoader, LoadedCase, LoadRequest, resolve_request
from app.segmentation_worker import SegmentationWorker, SegmentedMasks
from app.settings import AppSettings, review_root
from app.settings_store import SettingsStore
from inference.errors import InputError, StorageError
from inference.iir.prompts import task_question, task_title
from inference.report.review import ReviewError
from inference.report.review_store import ReviewAutosaver
from inference.run_record import RunRecord
from viewer.scene_state import SceneState


class CaseController(QObject):
    case_opened = Signal(object)  # LoadedCase: a new CT was loaded and is on screen (model "case")
    busy_changed = Signal()
    job_progress = Signal(str, float, str)  # kind (load, segmentation, analysis, export), fraction, message
    run_started = Signal(str)  # the question; live rounds follow
    round_started = Signal(int, str)
    round_text = Signal(int, str)
    round_done = Signal(object)
    # the live run is over (finished, failed or cancelled): show the model's run again
    live_run_ended = Signal()
    # a decision (item key) or the sign-off ("*") was refused or could not be saved: it is not
    # applied; the message says why ("Not saved: ..." when the disk refused it)
    review_failed = Signal(str, str)
    exported = Signal(object)  # ExportResult
    model_loaded = Signal(str)
    message = Signal(str)
    error = Signal(str, str)  # title, message
    # the volume does not look like CT (the reasons); the window may ask and call analyze_anyway()
    non_ct_refused = Signal(str)

    def __init__(self, state: SceneState, settings: SettingsStore | AppSettings | None = None, parent=None,
                 store: CaseStore | None = None, expert_factory=None, preload_model: bool = False,
                 runner=JobRunner):
        """``runner``: the job runner class of every worker (app.job_runner.SyncJobRunner runs
        each job at once, for headless tests)."""
        super().__init__(parent)
        self.state = state
        self.model = CaseModel(state)
        self.preload_model = preload_model  # load the model in the background once a case is open
        self.settings_store = SettingsStore.of(settings)
        self.store = store or CaseStore(review_root())
        self.live_question: str | None = None
        self.live_request: tuple | None = None  # (task, organ, typed question) of the live run
        self._pending: tuple[AnalysisJob, AppSettings] | None = None
        self._refused: tuple | None = None  # the analysis refused as non-CT, for analyze_anyway()
        self._restore: RunRecord | None = None  # a reopened run whose masks come back after the load

        self.loader = CaseLoader(self, runner=runner)
        self.segmenter = SegmentationWorker(self, factory=expert_factory, runner=runner)
        self.analysis = AnalysisWorker(self, runner=runner)
        self.exporter = runner("export", self)
        self.loader.loaded.connect(self._on_loaded)
        self.loader.failed.connect(lambda msg: self.error.emit("Could not open", msg))
        self.loader.progress.connect(lambda f, m: self.job_progress.emit("load", f, m))
        self.loader.finished.connect(self._after_load)
        for kind, job_runner in (("segmentation", self.segmenter.runner), ("analysis", self.analysis.runner),
                                 ("export", self.exporter)):
            job_runner.progress.connect(lambda f, m, k=kind: self.job_progress.emit(k, f, m))
            job_runner.finished.connect(self.busy_changed)
        self.segmenter.runner.succeeded.connect(self._on_segmented)
        self.segmenter.runner.failed.connect(lambda msg: self.error.emit("Segmentation failed", msg))
        self.segmenter.runner.cancelled.connect(lambda _m: self.message.emit("Segmentation cancelled; masks unchanged."))
        self.analysis.round_started.connect(self.round_started)
        self.analysis.text.connect(self.round_text)
        self.analysis.round_done.connect(self.round_done)
        self.analysis.model_loaded.connect(self.model_loaded)
        self.analysis.runner.succeeded.connect(self._on_analysis_done)
        self.analysis.runner.failed.connect(self._on_analysis_failed)
        self.analysis.runner.cancelled.connect(self._on_analysis_cancelled)
        self.analysis.runner.finished.connect(self._start_pending)
        self.exporter.succeeded.connect(self.exported)
        self.exporter.failed.connect(lambda msg: self.error.emit("Export failed", msg))
        self._draft_timer = QTimer(self, singleShot=True, interval=400)
        self._draft_timer.timeout.connect(self.flush_drafts)
        self.model.events.connect("drafts", lambda _key: self._draft_timer.start())

    @property
    def settings(self) -> AppSettings:
        """The settings now; each step reads them once, when it starts."""
        return self.settings_store.current

    # -- what is on screen (the model's, for callers acting on the case) -------------------------
    @property
    def ct(self):
        return self.model.ct

    @property
    def masks(self):
        return self.model.masks

    @property
    def run(self) -> RunRecord | None:
        return self.model.run

    @property
    def review(self):
        return self.model.review

    def run_matches_masks(self) -> bool:
        return self.model.run_matches_masks()

    def busy_kinds(self) -> list[str]:
        jobs = (("load", self.loader.busy or self._restore is not None), ("segmentation", self.segmenter.busy),
                ("analysis", self.live_question is not None), ("export", self.exporter.busy))
        return [k for k, on in jobs if on]

    # -- opening ---------------------------------------------------------------------------------
    def open_path(self, path, masks=None) -> bool:
        return self._load(resolve_request(path, masks))

    def open_masks(self, path) -> bool:
        if self.ct is None:
            self.error.emit("Could not open", f"{path}: open a CT before its organ masks")
            return False
        return self._load(LoadRequest(None, Path(path), None, base_ct=self.ct))

    def _load(self, request: LoadRequest) -> bool:
        if not self.loader.load(request):
            self.message.emit("A case is still loading; try again when it is done.")
            return False
        self.busy_changed.emit()
        return True

    def _on_loaded(self, case: LoadedCase) -> None:
        new_ct = case.request.ct is not None
        if new_ct and self.live_question is not None:
            self.analysis.cancel()  # its run still gets stored with its own case
        if not new_ct:
            self.model.set_masks(case.masks)
            self._check_run_masks()
            return
        self.model.set_case(case.ct, case.masks)
        self.case_opened.emit(case)
        stored = self.store.current(case.ct.content_hash())
        self._show(stored.run if stored else None)
        if stored is not None:
            self.message.emit(f"Restored the last analysis of this case ({stored.run.created}).")
            # once the loader has finished this load; busy until then: callers waiting for idle must not miss it
            self._restore = stored.run
        if case.masks is not None and self.preload_model and not self.analysis.model_is_loaded:
            self.analysis.preload(self.settings)

    def _after_load(self) -> None:
        run, self._restore = self._restore, None
        if run is not None:
            self._restore_run_masks(run)
        self.busy_changed.emit()

    def _restore_run_masks(self, run: RunRecord) -> None:
        """A reopened case without the run's masks gets them back: the mask file it used, else the
        backend again (TotalSegmentator's cache answers at once)."""
        if self.run_matches_masks() or run is not self.run:
            return
        src = run.segmentation.mask_source
        details = run.segmentation.details
        if src and Path(src).is_file() and self.masks is None:
            parts = details.get("parts_source")
            scheme = details.get("scheme", "auto")
            self._load(LoadRequest(None, Path(src), Path(parts) if parts and Path(parts).is_file() else None,
                                   base_ct=self.ct, scheme=scheme if scheme in ("auto", "totalseg", "merged") else "auto"))
        elif self.masks is None and run.segmentation.backend in ("totalsegmentator", "synthetic"):
            self.segment(run.segmentation.backend)
        else:
            self._check_run_masks()

    def _check_run_masks(self) -> None:
        if self.run is not None and not self.run_matches_masks():
            self.message.emit("The organ masks on screen are not the ones this run used: export needs the run's masks.")

    # -- segmentation ----------------------------------------------------------------------------
    def segment(self, backend: str | None = None) -> bool:
        if self.ct is None:
            self.error.emit("Segmentation", "Open a CT first.")
            return False
        settings = self.settings
        if not self.segmenter.start(self.ct, backend or settings.segmentation_backend, settings):
            self.message.emit("Segmentation is already running.")
            return False
        self.busy_changed.emit()
        return True

    def _on_segmented(self, result: SegmentedMasks) -> None:
        if result.ct is not self.ct:
            return  # the case changed meanwhile
        self.model.set_masks(result.masks)
        n = len(self.state.present_ids)
        self.message.emit(f"Organ masks from {result.backend}: {n} labels."
                          + (" " + "; ".join(result.warnings) if result.warnings else ""))
        self._check_run_masks()

    # -- analysis --------------------------------------------------------------------------------
    def question_for(self, task: str | None, organ: str | None = None, question: str | None = None) -> str:
        """What the panel shows as the run's question: the typed one, or the task's title (its
        questions are the model card's, asked one by one)."""
        if question is not None and question.strip():
            return question.strip()
        if task is None:
            raise InputError(None, "choose a task or type a question")
        task_question(task)  # an unknown task fails here
        return f"{task_title(task)}" + (f" of the {organ}" if organ else "") + ": the questions the model was trained on"

    def analyze(self, task: str | None, organ: str | None = None, question: str | None = None,
                allow_non_ct: bool = False) -> bool:
        """Start an analysis of the case on screen; False with an error signal when it cannot start.

        A volume that does not look like CT is refused (``non_ct_refused``) unless
        ``allow_non_ct``: the reader's override, recorded in the run."""
        problem = None
        settings = self.settings
        if self.ct is None:
            problem = "Open a CT first."
        elif self.masks is None:
            problem = "The case has no organ masks yet: segment it (Case > Segment Organs) or open a mask file."
        elif self.live_question is not None:
            problem = "An analysis is already running; cancel it first."
        else:
            problem = model_problem(settings)
        if problem is None:
            try:
                text = self.question_for(task, organ, question)
            except InputError as exc:
                problem = str(exc)
        if problem is not None:
            self.error.emit("Cannot analyze", problem)
            return False
        check = self.ct.plausibility()
        if not check.looks_like_ct and not allow_non_ct:
            self._refused = (task, organ, question)
            self.non_ct_refused.emit("; ".join(check.reasons))
            return False
        from inference.pipeline import case_id_for

        typed = bool(question and question.strip())
        job = AnalysisJob(self.ct, self.masks, text if typed else None, None if typed else task,
                          case_id_for(Path(self.ct.source_path)), self.model.mask_source,
                          allow_non_ct=allow_non_ct and not check.looks_like_ct, organ=None if typed else organ or None,
                          keep=lambda record, reviewer=settings.reviewer: self._keep_run(record, reviewer))
        self.live_request = (None if typed else task, None if typed else organ or None, text if typed else None)
        self.live_question = text
        self.run_started.emit(text)
        self.busy_changed.emit()
        if not self.analysis.analyze(job, settings):  # the model is still preloading
            self._pending = (job, settings)
        return True

    def analyze_anyway(self) -> bool:
        """Run the analysis last refused as non-CT, with the reader's override."""
        if self._refused is None:
            return False
        task, organ, question = self._refused
        self._refused = None
        return self.analyze(task, organ, question, allow_non_ct=True)

    def _start_pending(self) -> None:
        if self._pending is not None and not self.analysis.busy:
            job, settings = self._pending
            self._pending = None
            self.analysis.analyze(job, settings)

    def cancel(self) -> None:
        """Stop whatever long work is running (analysis, segmentation, loading, export)."""
        if self._pending is not None:
            self._pending = None
            self._end_live()
            self.message.emit("Analysis cancelled.")
        for worker in (self.analysis, self.segmenter, self.loader, self.exporter):
            worker.cancel()


    def _on_analysis_done(self, record) -> None:
        if record is None:  # a preload finished
            return
        self._end_live(notify=False)
        problem = self.analysis.storage_problem  # the worker stored it (see _keep_run)
        if problem:
            self.error.emit("Could not keep the run", problem)
        if self.ct is not None and record.case.content_hash == self.ct.content_hash():
            self._show(record, storage_problem=problem)
            secs = record.timings.get("analysis_ms", 0.0) / 1000.0
            self.message.emit(f"Analysis finished: {len(record.rounds)} rounds in {secs:.1f} s.")
        else:
            self.live_run_ended.emit()

    def _keep_run(self, record: RunRecord, reviewer: str) -> None:
        """On the analysis worker thread: the run, its new review and the case's current run, on disk
        before the run reaches the screen (atomic files: the GUI thread reads old or new, never half)."""
        self.store.save_run(record)
        saver = self.store.open_review(record, reviewer=reviewer, save_new=False)
        if not saver.path.exists():
            saver.save()

    def _on_analysis_failed(self, message: str) -> None:
        if self.live_question is None:  # a preload failed: say so quietly, Analyze will say it again
            self.message.emit(f"The model could not be loaded: {message}")
            return
        self._end_live()
        self.error.emit("Analysis failed", message)

    def _on_analysis_cancelled(self, _message: str) -> None:
        self._end_live()
        self.message.emit("Analysis cancelled; the previous result is shown.")

    def _end_live(self, notify: bool = True) -> None:
        self.live_question = None
        self.busy_changed.emit()
        if notify:
            self.live_run_ended.emit()

    # -- runs and reviews ------------------------------------------------------------------------
    def stored_runs(self):
        return self.store.runs(self.ct.content_hash()) if self.ct is not None else []

    def show_run(self, run: RunRecord) -> None:
        """Put a stored run of this case (and its review) on screen; also when the case folder
        cannot be written (the error is reported, the run shown read-only)."""
        try:
            self.store.set_current(run)
        except StorageError as exc:
            self.error.emit("Could not keep the case state", str(exc))
            self._show(run, storage_problem=str(exc))
        else:
            self._show(run)
        self._check_run_masks()

    def _show(self, run: RunRecord | None, storage_problem: str | None = None) -> None:
        self.flush_drafts()
        saver: ReviewAutosaver | None = None
        drafts: dict[str, str] = {}
        if run is not None:
            try:
                saver = self.store.open_review(run, reviewer=self.settings.reviewer, save_new=False)
            except InputError as exc:  # a damaged review file is left alone and reported
                self.error.emit("Review could not be opened", str(exc))
            if saver is not None and not saver.path.exists():
                try:  # a new review is saved at once, so the run is never without one
                    saver.save()
                except StorageError as exc:  # shown all the same; decisions say "not saved"
                    storage_problem = str(exc)
                    self.error.emit("Review cannot be saved", str(exc))
            drafts = self.store.load_drafts(run)
        self.model.show_run(run, saver, drafts, storage_problem)  # the highlight stays: clearing it costs a frame

    def decide(self, key: str, decision: str, text: str | None = None, comment: str = "", reason: str = "") -> bool:
        saver = self.model.saver
        if saver is None:
            return False
        try:
            saver.decide(key, decision, text=text, comment=comment, reason=reason)
        except StorageError as exc:  # not applied: the review is as it was before the click
            self.model.review_not_saved(str(exc))
            self.error.emit("Review not saved", f"The decision was not saved and is not applied.\n\n{exc}")
            self.review_failed.emit(key, f"Not saved: {exc}")
            return False
        except (ReviewError, InputError) as exc:
            self.error.emit("Review", str(exc))
            self.review_failed.emit(key, str(exc))
            return False
        self.model.review_applied(key)
        self.flush_drafts()  # the draft became the decision
        return True

    def sign(self, reviewer: str) -> bool:
        saver = self.model.saver
        if saver is None:
            return False
        try:
            saver.sign(reviewer, confirm=True)
        except StorageError as exc:
            self.model.review_not_saved(str(exc))
            self.error.emit("Sign-off not saved", f"The review was not signed: the sign-off could not be "
                            f"saved.\n\n{exc}")
            self.review_failed.emit("*", f"Not saved: {exc}")
            return False
        except (ReviewError, InputError) as exc:
            self.error.emit("Sign-off", str(exc))
            self.review_failed.emit("*", str(exc))
            return False
        self.model.review_applied("*")
        return True

    def set_draft(self, key: str, text: str | None) -> None:
        """Text typed in an edit box: kept (written debounced) until it is saved as an edit or discarded."""
        self.model.set_draft(key, text)

    def flush_drafts(self) -> None:
        self._draft_timer.stop()
        if self.run is not None:
            try:
                self.store.save_drafts(self.run, dict(self.model.drafts))
            except (StorageError, OSError) as exc:
                self.message.emit(f"Could not keep the unsaved edit: {exc}")

    # -- highlight -------------------------------------------------------------------------------
    def domain_problems(self) -> tuple[list[str], str]:
        """(why the CT on screen lies outside the model card's training domain, the model's name);
        ([], name) inside it or when the card declares nothing. A run on screen answers with what it recorded."""
        from inference.model.model_card import domain_check, load_model_card

        run = self.run
        if run is not None and run.domain and self.ct is not None and run.case.content_hash == self.ct.content_hash():
            return list(run.domain.get("reasons", [])), run.model_card.get("name", "")
        if self.ct is None or not self.settings.model_dir:
            return [], ""
        try:
            card = load_model_card(self.settings.model_dir)
        except InputError as exc:
            return [str(exc)], ""
        return domain_check(card, self.ct), card.name

    def round_labels(self, rnd) -> list[int]:
        """Mask labels a round's ROI covers: the same rule the report's key images use."""
        from inference.report.traceable_report import roi_labels

        if self.masks is None:
            return []
        return roi_labels(rnd, self.masks, set(self.state.present_ids))

    def highlight_round(self, rnd) -> bool:
        labels = self.round_labels(rnd)
        if not labels:
            self.state.clear_highlight()
            return False
        return self.state.set_highlight(labels) is not None

    # -- export ----------------------------------------------------------------------------------
    def export_problem(self) -> str | None:
        if self.run is None or self.review is None:
            return "There is no analysis to export yet."
        if self.ct is None or self.masks is None or not self.run_matches_masks():
            return "The organ masks on screen are not the ones this run used; open the run's masks to export."
        return None

    def export(self, out_dir, formats, deidentify: bool, key_images=None) -> bool:
        from inference.report import export_report
        from inference.report.review import Review

        problem = self.export_problem()
        if problem is not None:
            self.error.emit("Export", problem)
            return False
        run, ct, masks = self.run, self.ct, self.masks
        review = Review.from_dict(self.review.to_dict())  # a snapshot: the reviewer may go on editing
        images = None if deidentify else key_images
        ok = self.exporter.start(lambda progress, cancel: export_report(
            run, review, ct, masks, out_dir, formats=set(formats), deidentify=deidentify, key_images=images))
        self.busy_changed.emit()
        return ok

    def shutdown(self) -> None:
        self.flush_drafts()
        for worker in (self.analysis, self.segmenter, self.loader):
            worker.shutdown()
        self.exporter.shutdown()
