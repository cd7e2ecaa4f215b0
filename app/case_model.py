"""The case on screen, in one Qt-free model (napari's ViewerModel): the CT and its organ masks,
where the masks came from and their hash, the analysis run shown, its review and the reviewer's
unsaved edit-box drafts.

The controller (app/case_controller.py) runs the workers and changes the model only through the
methods below; the window and the panels listen to its events. The CT and the masks are kept in
the scene state that every view renders (viewer/scene_state.py) and nowhere else, and the model
puts them there together with their source, so the source and the hash it reports are always
those of the masks on screen.

Events (callback arguments in brackets):

    case     a new CT (with or without masks) is on screen
    masks    other masks for the same CT (a mask file, a segmentation)
    run      the run shown, its review and its drafts were replaced or cleared
    review   a decision or the sign-off was applied and saved [item key, "*" for the sign-off]
    drafts   the text typed in an edit box changed [item key]
"""
from __future__ import annotations

from app.prepared_masks import PreparedMasks
from inference.ct_volume import CTVolume
from inference.report.review import Review
from inference.report.review_store import ReviewAutosaver
from inference.run_record import RunRecord
from inference.segmentation.organ_masks import OrganMasks
from viewer.events import Events
from viewer.scene_state import SceneState

EVENTS = ("case", "masks", "run", "review", "drafts")


class CaseModel:
    def __init__(self, scene: SceneState | None = None) -> None:
        self.scene = scene or SceneState()
        self.events = Events(EVENTS, "case")
        self._source: tuple[OrganMasks, str | None] | None = None  # (the masks it names, their file)
        self.run: RunRecord | None = None
        self.saver: ReviewAutosaver | None = None  # the run's review, saved on every decision
        # why the run on screen cannot be saved (its review folder is not writable), else None
        self.storage_problem: str | None = None
        self.drafts: dict[str, str] = {}  # item key -> text typed but not yet saved as an edit

    # -- what is on screen ---------------------------------------------------------------------
    @property
    def ct(self) -> CTVolume | None:
        return self.scene.ct

    @property
    def masks(self) -> OrganMasks | None:
        return self.scene.masks

    @property
    def mask_source(self) -> str | None:
        """The mask file on screen, None when a backend made the masks (or there are none)."""
        if self._source is None or self._source[0] is not self.scene.masks:
            return None  # someone put other masks into the scene: their source is unknown
        return self._source[1]

    @property
    def mask_hash(self) -> str | None:
        return self.masks.content_hash() if self.masks is not None else None

    @property
    def review(self) -> Review | None:
        return self.saver.review if self.saver is not None else None

    def run_matches_masks(self) -> bool:
        return self.run is not None and self.mask_hash == self.run.segmentation.mask_hash

    # -- changes -------------------------------------------------------------------------------
    def set_case(self, ct: CTVolume, masks: PreparedMasks | None = None) -> None:
        """A new CT, with its masks if it has some; the run stays until ``show_run``."""
        self._put(ct, masks)
        self.events.emit("case")

    def set_masks(self, masks: PreparedMasks) -> None:
        """Other masks for the CT on screen."""
        if self.ct is None:
            raise ValueError("no CT on screen to put organ masks on")
        self._put(self.ct, masks)
        self.events.emit("masks")

    def _put(self, ct: CTVolume, prepared: PreparedMasks | None) -> None:
        if prepared is None:
            self.scene.set_case(ct, None, None)
            self._source = None
        else:
            self.scene.set_case(ct, prepared.masks, prepared.boxes)
            self._source = (prepared.masks, prepared.source)

    def show_run(self, run: RunRecord | None, saver: ReviewAutosaver | None = None,
                 drafts: dict[str, str] | None = None, storage_problem: str | None = None) -> None:
        self.run, self.saver = run, saver
        self.drafts = dict(drafts or {})
        self.storage_problem = storage_problem
        self.events.emit("run")

    def review_applied(self, key: str) -> None:
        """The saver applied and wrote a decision (or the sign-off): the folder is writable, and
        the item's draft became the decision."""
        self.storage_problem = None
        self.drafts.pop(key, None)
        self.events.emit("review", key)

    def review_not_saved(self, problem: str) -> None:
        """A decision the disk refused (not applied); the controller says so to the reader."""
        self.storage_problem = problem

    def set_draft(self, key: str, text: str | None) -> None:
        if text:
            if self.drafts.get(key) == text:
                return
            self.drafts[key] = text
        elif self.drafts.pop(key, None) is None:
            return
        self.events.emit("drafts", key)
