"""The demo model's card (inference/model/model_card.py): the question forms of the synthetic cohort's
VQA writers (training/cohort/vqa_*.py), the options they offer and the grids the cohort was sampled on.

The forms the writers build inline are restated here; tests/test_model_card.py generates cohort
samples and checks that every question they ask follows one of these forms, so a writer that
changes its wording fails that test until this file follows.

    python -m training.demo_model.model_card --cohort-summary COHORT/cohort_summary.json --out MODEL_DIR
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from inference.atomic_write import atomic_write
from inference.model.model_card import CARD_FILE, SCHEMA, card_from_dict

from ..cohort.grid import DEFAULT_FOV_MM
from ..cohort.knowledge import BOUNDARIES, SHAPES, load_kg
from ..cohort.vqa_attributes import DENSITY_OPTIONS
from ..cohort.vqa_common import DIGESTIVE, disp
from ..cohort.vqa_localization import NO_LESION, ORGAN_QUESTIONS, PART_QUESTIONS
from ..cohort.vqa_report import QUESTION as REPORT_QUESTION

TUMOR_POSITION = "Where is the lesion located in the {organ}? Identify its sub-region."
SHAPE = "What is the shape of the largest lesion in the {organ}?"
BOUNDARY = "How is the boundary of the largest lesion in the {organ}?"
DENSITY = "What is the density of the largest lesion in the {organ}?"
COUNT = "How many focal lesions are seen in the {organ}?"
OTHERS = "Besides shape, boundary and density, what other imaging feature does the largest lesion in the {organ} show?"
STAGE = "What is the {part} stage of the {organ} tumor?"
INTENDED_USE = ("Demonstrates the TumorChain mechanics (interleaved reasoning, organ tokens, traceable reports) on "
                "synthetic phantoms. It does not read real CT and is not a medical device.")


def stage_options() -> dict[str, dict[str, list[str]]]:
    """{"T"|"N"|"M": {organ: stages}} of each organ's most frequent malignant pathology's AJCC system
    (the cohort lists a system's stages in order, unshuffled)."""
    kg = load_kg()
    out: dict[str, dict[str, list[str]]] = {"T": {}, "N": {}, "M": {}}
    for organ in DIGESTIVE:
        malignant = [p for p in kg.pathologies_of(organ) if p.malignant and p.tnm]
        if not malignant:
            continue
        system = kg.tnm[max(malignant, key=lambda p: p.weight).tnm]
        for part in out:
            out[part][organ] = list(system.stages(part))
    return out


def grids(summary: dict) -> list[dict]:
    """The cohort's sampling grids: its shape (and spacing, or the default field of view over it), the
    finer shape when the cohort has one, and any ``grids`` the summary lists."""
    def grid(shape, spacing=None) -> dict:
        spacing = spacing or [f / n for f, n in zip(DEFAULT_FOV_MM, shape)]
        return {"shape": [int(v) for v in shape], "spacing_mm": [round(float(s), 4) for s in spacing]}

    out = [grid(summary["shape"], summary.get("spacing"))]
    if summary.get("fine_shape") and summary.get("fine_every"):
        out.append(grid(summary["fine_shape"]))
    for g in summary.get("grids", []) or []:  # the cohort writes shapes over its field of view
        out.append(grid(g["shape"], g.get("spacing") or g.get("spacing_mm")) if isinstance(g, dict) else grid(g))
    unique = []
    for g in out:
        if g not in unique:
            unique.append(g)
    return unique


def demo_card(summary: dict, name: str = "TumorChain demo model", version: str = "") -> dict:
    stages = stage_options()
    organs_with_parts = [o for o in DIGESTIVE]
    organ_q = ORGAN_QUESTIONS[0]
    card = {
        "schema": SCHEMA,
        "name": name,
        "version": version,
        "intended_use": INTENDED_USE,
        "tasks": {
            "localization": {"steps": [
                {"id": "organ", "title": "Organ", "template": organ_q,
                 "options": {"organs_in_case": list(DIGESTIVE), "extra": [NO_LESION]}},
                {"id": "sub_region", "title": "Sub-region", "template": TUMOR_POSITION},
            ]},
            "attributes": {"steps": [
                {"id": "shape", "title": "Shape", "template": SHAPE, "options": list(SHAPES)},
                {"id": "boundary", "title": "Boundary", "template": BOUNDARY, "options": list(BOUNDARIES)},
                {"id": "density", "title": "Density", "template": DENSITY, "options": list(DENSITY_OPTIONS)},
                {"id": "count", "title": "Count", "template": COUNT},
                {"id": "others", "title": "Other features", "template": OTHERS},
            ]},
            "tnm": {"steps": [
                {"id": part, "title": f"{part} stage", "template": STAGE.replace("{part}", part),
                 "options": {"by_organ": dict(stages[part])}}
                for part in ("T", "N", "M")]},
            "report": {"steps": [{"id": "report", "title": "Report", "template": REPORT_QUESTION}]},
        },
        "question_forms": list(dict.fromkeys(
            list(ORGAN_QUESTIONS) + list(PART_QUESTIONS) + [TUMOR_POSITION, SHAPE, BOUNDARY, DENSITY, COUNT, OTHERS]
            + [STAGE.replace("{part}", p) for p in "TNM"] + [REPORT_QUESTION])),
        "domain": {
            "source": "synthetic_phantom",
            "description": (f"{summary.get('cases', '?')} synthetic abdominal phantoms of the TumorChain cohort "
                            f"generator {summary.get('generator_version', '')}: the five digestive organs "
                            f"({', '.join(disp(o) for o in organs_with_parts)}), their lesions, nodes and metastases"),
            "source_marker": "tumorchain synthetic",
            "grids": grids(summary),
            "field_of_view_mm": list(DEFAULT_FOV_MM),
            "spacing_tolerance": 0.1,
            "fov_tolerance": 0.25,
        },
    }
    card_from_dict(card)  # what we write, the workstation reads
    return card


def write_model_card(out: str | Path, cohort_summary: dict, version: str = "") -> Path:
    return atomic_write(Path(out) / CARD_FILE, json.dumps(demo_card(cohort_summary, version=version), indent=1) + "\n",
                        what="model card")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.demo_model.model_card", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cohort-summary", type=Path, required=True, help="the cohort's cohort_summary.json")
    p.add_argument("--out", type=Path, required=True, help="the model folder")
    p.add_argument("--version", default="", help="the model's version, e.g. 0.5")
    args = p.parse_args(argv)
    path = write_model_card(args.out, json.loads(args.cohort_summary.read_text()), args.version)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
