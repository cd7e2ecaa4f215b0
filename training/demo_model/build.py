"""Build the demo model from nothing, on CPU, in one seeded command:

    python -m training.demo_model.build --out resources/demo_model --seed 0

1. a synthetic cohort (training/cohort; recipe.json: cases, shape) split by case into train/val/test;
2. a byte-level BPE tokenizer trained on the train split's text, and a tiny random Qwen2 LLM;
3. a TumorChain model around it (tiny 3D ViT encoder on the standard 32x256x256 input), whose visual
   side is first pretrained on patch-level lesion targets (encoder_pretrain.py: our stand-in for the
   pretrained M3D encoder the paper starts from);
4. training with this module (Hugging Face Trainer, eq. 8 joint loss, IIR chains);
5. export to ``--out`` (safetensors, the workstation's from_pretrained folder);
6. evaluation on the held-out test split with and without IIR (Table 1 columns), the classifier's
   held-out AUC, and a small fixed "guard" set regenerated from seeds by tests/test_training_demo_model.py;
   all numbers go to <out>/eval_summary.json and <out>/EVAL.md.

Intermediate files (cohort, case cache, checkpoints, full results) go to ``--work``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

RECIPE = Path(__file__).resolve().parent / "recipe.json"
REPO = Path(__file__).resolve().parents[2]
DEMO_COMMAND = "python -m training.demo_model.build --out resources/demo_model --seed 0"


def load_recipe(path: str | Path = RECIPE) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def ensure_cohort(folder: Path, cases: int, seed: int, shape, workers: int, log=print, fine_shape=None,
                  fine_every: int = 0, grids=None) -> Path:
    """Generate the cohort unless ``folder`` already holds the same one (same seed, size, sampling, generator)."""
    from training.cohort.generate import generate_cohort
    from training.cohort.ground_truth import GENERATOR_VERSION

    summary = folder / "cohort_summary.json"
    as_lists = lambda g: None if g is None else [list(x) for x in g]
    if summary.is_file():
        s = json.loads(summary.read_text())
        if (s.get("seed"), s.get("cases"), list(s.get("shape", [])), s.get("generator_version"), s.get("fine_shape"),
                s.get("fine_every", 0), s.get("grids")) == (seed, cases, list(shape), GENERATOR_VERSION,
                                                             None if fine_shape is None else list(fine_shape),
                                                             fine_every, as_lists(grids)):
            log(f"cohort: reusing {folder}")
            return folder
    t0 = time.perf_counter()
    generate_cohort(folder, cases, seed, tuple(shape), None, workers, log=None, fine_shape=fine_shape,
                    fine_every=fine_every, grids=grids)
    log(f"cohort: {cases} cases in {time.perf_counter() - t0:.0f} s")
    return folder


def make_llm(cohort: Path, work: Path, recipe: dict, seed: int) -> Path:
    import itertools

    from training.demo_model.tiny_llm import make_tiny_llm
    from training.demo_model.tokenizer import fixed_texts, manifest_texts, train_tokenizer

    tok = train_tokenizer(itertools.chain(manifest_texts([cohort / "train.jsonl"]), fixed_texts()),
                          recipe["tokenizer"]["vocab_size"])
    l = recipe["llm"]
    return make_tiny_llm(tok, work / "llm", seed, hidden=l["hidden"], intermediate=l["intermediate"],
                         layers=l["layers"], heads=l["heads"], kv_heads=l["kv_heads"])


STAGE0_VERSION = 3  # bump when stage 0's code changes what it makes; 2: keyed on its inputs, not the LLM's bytes;
# 3: keeps the epoch with the best held-out AUC, not the last


def stage0_key(recipe: dict, seed: int, cohort: Path) -> str:
    """What stage 0's result depends on: the recipe's cohort, LLM-shape, model and pre-training sections,
    the seed, and what it reads of the train and val cases: their image, mask and lesion files' bytes
    and their organ-level labels. Not the tokenizer or the chains' text: stage 0 trains only the visual
    side (encoder, organ pool, projector, classifier), so a build that changes only the chains or the
    training recipe reuses it (start_point puts the new LLM beside it) instead of redoing a ~20 min
    pre-training."""
    import hashlib

    from inference.labels import merged_labels
    from training.case_cache import file_digest
    from training.manifest import load_manifest

    table = merged_labels()
    parts = {k: recipe[k] for k in ("cohort", "llm", "model", "pretrain")}
    h = hashlib.sha1(json.dumps(parts | {"seed": seed, "version": STAGE0_VERSION}, sort_keys=True).encode())
    labels: dict[str, dict] = {}
    files: dict[str, tuple] = {}
    for name in ("train", "val"):
        for s in load_manifest(cohort / f"{name}.jsonl"):
            labels.setdefault(f"{name}/{s.case_id}", {}).update(
                {k: v for k, v in s.organ_labels.items() if not table.by_name(k).is_substructure})
            lesions = s.ct_file.parent / "lesions.nii.gz"  # v0.1's patch targets
            files[s.case_id] = (s.ct_file, s.masks_file, s.parts_file, lesions if lesions.is_file() else None)
    h.update(json.dumps(labels, sort_keys=True).encode())
    for cid in sorted(files):
        for f in files[cid]:
            h.update(file_digest(f).encode())
    return h.hexdigest()


def start_point(stage0: Path, llm: Path, model_cfg, seed: int, out: Path) -> Path:
    """The main stage's starting model: this build's LLM and tokenizer with stage 0's visual parts."""
    import torch

    from inference.model.model_files import load_part_weights
    from inference.model.modeling_tumorchain import TumorChainModel

    torch.manual_seed(seed)
    model = TumorChainModel.build(llm, model_cfg, device="cpu")
    load_part_weights(model, stage0 / "model.safetensors", model.parts)
    model.save_pretrained(out)
    return out


def pretrain_stage(cohort: Path, llm: Path, work: Path, model_cfg, p: dict, seed: int, log=print) -> dict:
    """Stage 0 (encoder_pretrain.py) on the train split, monitored on the val split: for a masked
    recipe, organ-level normal/abnormal through the organ tokens; otherwise patch-level lesion
    targets. The model is saved as a TumorChain folder that stage 1 fine-tunes."""
    import torch

    from inference.model.modeling_tumorchain import TumorChainModel
    from training.case_cache import CaseCache, Geometry
    from training.dataset import prepare_cases
    from training.demo_model.encoder_pretrain import pretrain_masked_organs, pretrain_visual
    from training.manifest import load_manifest

    cache = CaseCache(work / "case_cache", Geometry.from_model_config(model_cfg))
    split = {}
    for name in ("train", "val"):
        samples = load_manifest(cohort / f"{name}.jsonl")
        paths = prepare_cases(samples, cache)
        folders = {s.case_id: s.ct_file.parent for s in samples}
        labels: dict[str, dict[str, int]] = {}
        for s in samples:
            labels.setdefault(s.case_id, {}).update(s.organ_labels)
        split[name] = [(cid, paths[cid], folders[cid], labels[cid]) for cid in sorted(paths)]
    log(f"case cache ready: {len(split['train'])} train and {len(split['val'])} val cases")
    torch.manual_seed(seed)
    model = TumorChainModel.build(llm, model_cfg, device="cpu")
    if model_cfg.gamma_mode == "masked":  # organ labels through the organ tokens themselves
        pick = lambda cases: [(cid, path, labels) for cid, path, _, labels in cases]
        result = pretrain_masked_organs(model, cache, pick(split["train"]), epochs=p["epochs"], lr=p["lr"],
                                        batch=p["batch"], seed=seed, heldout=pick(split["val"]),
                                        pos_weight=p.get("pos_weight", 3.0), log=log)
    else:  # patch-level lesion targets (demo model v0.1)
        pick = lambda cases: [(cid, path, folder) for cid, path, folder, _ in cases]
        result = pretrain_visual(model, cache, pick(split["train"]), epochs=p["epochs"], lr=p["lr"], batch=p["batch"],
                                 seed=seed, threshold=p.get("threshold", 0.1), pos_weight=p.get("pos_weight", 16.0),
                                 heldout=pick(split["val"]), targets_dir=work / "lesion_targets", log=log)
    folder = work / f"pretrained_{seed}"
    model.save_pretrained(folder)
    return result | {"folder": folder}


def guard_samples(work: Path, guard: dict, log=print):
    """The fixed held-out guard set: a cohort of guard['cases'] cases from guard['seed'] (all splits)."""
    from training.manifest import load_manifest

    folder = ensure_cohort(work / f"guard_{guard['seed']}", guard["cases"], guard["seed"],
                           guard.get("shape", [128, 128, 64]), 1, log)
    splits = json.loads((folder / "cohort_summary.json").read_text())["splits"]
    # a small guard cohort may leave a split without cases (its manifest is empty): skip it, do not fail
    samples = [s for name in ("train", "val", "test") if splits[name]["samples"]
               for s in load_manifest(folder / f"{name}.jsonl")]
    return [s for s in samples if s.subtask in set(guard["subtasks"])]


def build(out: Path, seed: int, work: Path, recipe: dict, log=print, skip_eval: bool = False) -> dict:
    import torch

    from inference.model import TumorChainConfig
    from training.config import TrainConfig
    from training.demo_model.model_card import write_model_card
    from training.export import export_checkpoint
    from training.trainer import run_training

    t_all = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    c = recipe["cohort"]
    cohort = ensure_cohort(work / f"cohort_{seed}", c["cases"], seed, c["shape"], c.get("workers", 1), log,
                           c.get("fine_shape"), c.get("fine_every", 0), c.get("grids"))
    demo = demo_case_check(recipe, work, log) if recipe.get("demo_case") else None  # fixed before training
    llm = make_llm(cohort, work, recipe, seed)
    model_cfg = TumorChainConfig.from_dict(dict(recipe["model"]))
    model_cfg.save(work / "tumorchain_config.json")
    key = stage0_key(recipe, seed, cohort)
    record = work / f"pretrained_{seed}" / "stage0.json"
    if record.is_file() and json.loads(record.read_text()).get("key") == key:
        pre = json.loads(record.read_text())["result"] | {"folder": record.parent, "reused": True}
        log(f"stage 0: reusing {record.parent} (same recipe, seed, images and labels)")
    else:
        pre = pretrain_stage(cohort, llm, work, model_cfg, recipe["pretrain"], seed, log)
        record.write_text(json.dumps({"key": key, "result": {k: v for k, v in pre.items() if k != "folder"}}, indent=1))
    start = start_point(pre["folder"], llm, model_cfg, seed, work / f"start_{seed}")
    run_dir = work / f"run_{seed}"
    cfg = TrainConfig(train_manifest=str(cohort / "train.jsonl"), model=str(start), output_dir=str(run_dir),
                      cache_dir=str(work / "case_cache"), seed=seed, **recipe["train"])
    t0 = time.perf_counter()
    train = run_training(cfg, log_fn=log)
    train_minutes = (time.perf_counter() - t0) / 60.0
    exported = export_checkpoint(run_dir / "final", out)
    log(f"exported {exported['bytes'] / 1e6:.1f} MB to {out}")
    write_model_card(out, json.loads((cohort / "cohort_summary.json").read_text()), recipe.get("version", ""))
    summary = {
        "command": DEMO_COMMAND if seed == 0 else f"python -m training.demo_model.build --out {out} --seed {seed}",
        "seed": seed, "recipe": recipe,
        "cohort": json.loads((cohort / "cohort_summary.json").read_text())["splits"],
        "train": {k: train[k] for k in ("global_step", "train_loss", "train_samples_per_second", "examples", "dropped")}
        | {"minutes": round(train_minutes, 2), "first_log": train["log"][0] if train["log"] else None,
           "last_log": train["log"][-1] if train["log"] else None, "torch": torch.__version__},
        "size_bytes": exported["bytes"],
        "visual_pretraining": {k: v for k, v in pre.items() if k != "folder"},
        "demo_case": demo,
    }
    if not skip_eval:
        summary.update(evaluate_demo(out, cohort, work, recipe, log))
    summary["build_minutes"] = round((time.perf_counter() - t_all) / 60.0, 2)
    (out / "eval_summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    (out / "EVAL.md").write_text(eval_markdown(summary), encoding="utf-8")
    return summary


def heldout_case_ids(cohort: Path, e: dict) -> list[str]:
    """The held-out split's first ``max_cases`` cases (sorted ids), to bound the build time."""
    from training.manifest import load_manifest

    ids = sorted({s.case_id for s in load_manifest(cohort / f"{e['split']}.jsonl")})
    return ids[:e.get("max_cases") or None]


def heldout_grid_manifest(cohort: Path, work: Path, case_ids: list[str], shape, workers: int = 1) -> Path:
    """The held-out cases regenerated on one grid (training.cohort.generate.regrid_cases), reused when
    ``work`` already holds them for the same cohort seed, cases, grid and generator."""
    from training.cohort.generate import regrid_cases
    from training.cohort.ground_truth import GENERATOR_VERSION

    seed = json.loads((cohort / "cohort_summary.json").read_text())["seed"]
    folder = work / f"heldout_{seed}_{'x'.join(str(n) for n in shape)}"
    key = {"seed": seed, "cases": case_ids, "shape": list(shape), "generator_version": GENERATOR_VERSION}
    stamp = folder / "heldout.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == key:
        return folder / "samples.jsonl"
    manifest = regrid_cases(folder, seed, case_ids, shape, workers)
    stamp.write_text(json.dumps(key))
    return manifest


def demo_case_check(recipe: dict, work: Path, log=print) -> dict:
    """The bundled demo case is what the recipe's demo seed (fixed before training) regenerates: written
    again under ``work`` and compared file by file with resources/demo_case. Returns the record."""
    from training.case_cache import file_digest
    from training.cohort.generate import DEMO_SEED, write_demo

    d = recipe.get("demo_case") or {}
    if d.get("seed") != DEMO_SEED:
        raise ValueError(f"recipe demo_case seed {d.get('seed')} is not the generator's DEMO_SEED {DEMO_SEED}")
    bundled = REPO / d.get("folder", "resources/demo_case")
    write_demo(work / "demo_case")
    names = ("ct.nii.gz", "organs.nii.gz", "parts.nii.gz", "lesions.nii.gz", "ground_truth.json", "samples.jsonl")
    same = {n: (bundled / n).is_file() and file_digest(bundled / n) == file_digest(work / "demo_case" / n)
            for n in names}
    log(f"demo case (seed {DEMO_SEED}): bundled files identical to a regeneration: {same}")
    return {"seed": DEMO_SEED, "folder": str(d.get("folder", "resources/demo_case")), "identical": same}


def evaluate_demo(out: Path, cohort: Path, work: Path, recipe: dict, log=print) -> dict:
    """Held-out evaluation on every grid of recipe['eval']['grids'] (the first is the cohort's: it is
    also "heldout", the table EVAL.md and the workstation's model card show first), the classifier's
    held-out AUC, the guard set, and the bundled demo case."""
    from inference.pipeline import Pipeline, load_model
    from training.classifier_eval import classifier_scores, classifier_summary
    from training.eval_report import markdown_table
    from training.evaluate import evaluate_samples, run_evaluation
    from training.manifest import load_manifest

    e, g = recipe["eval"], recipe["guard"]
    model = load_model(out, device="cpu")
    compact = lambda res: {m: {k: v["accuracy"] for k, v in t["columns"].items() if v["n"]} | {"avg": t["avg"]}
                           for m, t in res["modes"].items()}
    ids = heldout_case_ids(cohort, e)
    grids = e.get("grids") or [{"name": "cohort", "shape": recipe["cohort"]["shape"]}]
    per_grid = []
    for grid in grids:
        t0 = time.perf_counter()
        manifest = heldout_grid_manifest(cohort, work, ids, grid["shape"], recipe["cohort"].get("workers", 1))
        held = run_evaluation(out, manifest, work / "eval" / "x".join(str(n) for n in grid["shape"]),
                              max_rounds=e["max_rounds"], max_new_tokens=e["max_new_tokens"], model=model, log_fn=None)
        per_grid.append({"name": grid["name"], "shape": list(grid["shape"]), "spacing_mm": grid_spacing(grid["shape"]),
                         "split": e["split"], "cases": len(ids), "n_samples": held["n_samples"],
                         "accuracy": compact(held),
                         "counts": {k: v["n"] for k, v in held["modes"]["iir"]["columns"].items()},
                         "mean_rounds": {m: t["mean_rounds"] for m, t in held["modes"].items()},
                         "report_token_f1": {m: t["report_token_f1"] for m, t in held["modes"].items()},
                         "minutes": round((time.perf_counter() - t0) / 60.0, 2), "table_md": markdown_table(held)})
        log(f"held-out on {grid['name']} {grid['shape']}:\n{per_grid[-1]['table_md']}")
    cls = classifier_summary(classifier_scores(model, load_manifest(cohort / f"{e['split']}.jsonl")))
    cls["cases"] = len({s.case_id for s in load_manifest(cohort / f"{e['split']}.jsonl")})
    log(f"classifier on held-out organs: {cls}")
    pipeline = Pipeline(model, out)
    guard = evaluate_samples(pipeline, guard_samples(work, g, log), max_rounds=e["max_rounds"],
                             max_new_tokens=e["max_new_tokens"])
    demo = recipe.get("demo_case") or {}
    demo_res = None
    if demo:
        demo_res = evaluate_samples(pipeline, load_manifest(REPO / demo.get("folder", "resources/demo_case")
                                                            / "samples.jsonl"),
                                    max_rounds=e["max_rounds"], max_new_tokens=e["max_new_tokens"])
        log(f"demo case: {compact(demo_res)}")
    return {
        "heldout": per_grid[0],
        "heldout_grids": per_grid,
        "classifier": cls,
        "guard": {"seed": g["seed"], "cases": g["cases"], "subtasks": g["subtasks"], "margin": g["margin"],
                  "n_samples": guard["n_samples"], "accuracy": compact(guard),
                  "counts": {k: v["n"] for k, v in guard["modes"]["iir"]["columns"].items() if v["n"]},
                  "max_rounds": e["max_rounds"], "max_new_tokens": e["max_new_tokens"]},
    } | ({"demo_case_eval": {
        "accuracy": compact(demo_res),
        "answers": [{k: r[k] for k in ("subtask", "mode", "reference", "answer", "correct", "examined",
                                        "abnormal_prob")} | {"text": r["text"][:600]} for r in demo_res["samples"]]}}
         if demo_res else {})


def grid_spacing(shape) -> list[float]:
    """Voxel size in mm of a cohort grid (shape over the default field of view)."""
    from training.cohort.grid import DEFAULT_FOV_MM

    return [round(f / n, 3) for f, n in zip(DEFAULT_FOV_MM, shape)]


def eval_markdown(s: dict) -> str:
    lines = ["# Demo model: how it was made and how well it does", "",
             f"Made by `{s['command']}` in {s.get('build_minutes', '?')} min on CPU "
             f"({s['size_bytes'] / 1e6:.1f} MB of safetensors).", ""]
    grids = (s.get("recipe") or {}).get("cohort", {}).get("grids")
    if grids:
        lines += [f"Cohort: {s['recipe']['cohort']['cases']} cases, case i sampled on grid i mod {len(grids)} of "
                  + ", ".join(f"{g[0]}x{g[1]}x{g[2]} ({' x '.join(f'{v:g}' for v in grid_spacing(g))} mm)"
                              for g in grids) + " over one field of view.", ""]
    v = s.get("visual_pretraining") or {}
    if v:
        auc = v.get("heldout_organ_auc") or v.get("heldout_patch_auc")
        lines += [f"Stage 0 (visual pre-training): {v.get('epochs')} epochs, {v.get('seconds', 0) / 60:.1f} min"
                  + (" (reused from an earlier build with the same recipe, seed, images and labels; not in the "
                     "time above)"
                     if v.get("reused") else "")
                  + (f"; held-out AUC per epoch {auc}" if auc else "")
                  + (f"; kept epoch {v['kept_epoch']} (the best held-out AUC, {v['kept_auc']})"
                     if v.get("kept_epoch") else "") + ".", ""]
    t = s["train"]
    lines += [f"Training: {t['global_step']} optimizer steps over {t['examples']} sequences, "
              f"{t['train_samples_per_second']} samples/s, {t['minutes']} min; loss {t['first_log']['loss']:.3f} -> "
              f"{t['last_log']['loss']:.3f} (LM {t['first_log'].get('lm_loss')} -> {t['last_log'].get('lm_loss')}, "
              f"classifier {t['first_log'].get('cls_loss')} -> {t['last_log'].get('cls_loss')}).", ""]
    if "heldout" in s:
        for h in s.get("heldout_grids") or [s["heldout"]]:
            where = (f" on the {h['name']} grid ({h['shape'][0]}x{h['shape'][1]}x{h['shape'][2]} voxels, "
                     f"{' x '.join(f'{v:g}' for v in h['spacing_mm'])} mm)" if "shape" in h else "")
            lines += [f"## Held-out {h['split']} split{where}: {h['n_samples']} samples, accuracy in %", "",
                      h["table_md"]]
        c = s["classifier"]
        lines += [f"Auxiliary classifier on {c['n']} held-out (case, organ) pairs ({c['abnormal']} abnormal): "
                  f"accuracy {100 * c['accuracy']:.1f}% (majority class {100 * c['majority_baseline']:.1f}%), "
                  "ROC AUC " + (f"{c['auc']:.3f}" if c.get("auc") is not None else "n/a (one class only)") + ".", ""]
        g = s["guard"]
        lines += [f"Guard set (cohort seed {g['seed']}, {g['cases']} cases, {g['n_samples']} samples; "
                  f"tests/test_training_demo_model.py re-runs it): " + json.dumps(g["accuracy"]), ""]
    d, de = s.get("demo_case"), s.get("demo_case_eval")
    if d:
        lines += [f"Bundled demo case: seed {d['seed']} (fixed in the recipe before training); the bundled files "
                  + ("are identical to a regeneration." if all(d["identical"].values())
                     else f"differ from a regeneration: {d['identical']}."), ""]
    if de:
        lines += ["| Demo case question | Mode | Reference | Answer | Right |", "|---|---|---|---|---|"]
        cell = lambda t: t[:40].replace("|", "/").replace("\n", " ")
        lines += [f"| {r['subtask']} | {r['mode']} | {cell(r['reference'])} | {cell(r['answer'])} | "
                  f"{'yes' if r['correct'] else 'no'} |" for r in de["answers"]]
        lines += [""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.demo_model.build", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("resources/demo_model"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=Path("build/demo_model_work"), help="intermediate files")
    p.add_argument("--recipe", type=Path, default=RECIPE)
    p.add_argument("--skip-eval", action="store_true")
    args = p.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    summary = build(args.out, args.seed, args.work, load_recipe(args.recipe), skip_eval=args.skip_eval)
    print(f"demo model written to {args.out} in {summary['build_minutes']} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
