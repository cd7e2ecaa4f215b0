"""Test fake, loaded by Python's site module when tests put this folder on the worker's PYTHONPATH.

It replaces exactly one function: ``totalsegmentator.nnunet.nnUNetv2_predict``, TotalSegmentator's
hand-over to nnU-Net (it builds ``nnUNetPredictor``, loads ``checkpoint_final.pth`` and runs the
network over the files in ``dir_in``). Everything around it stays real: the worker, TotalSegmentator's
python_api, reading the input, canonical reorientation, resampling to the model spacing, cropping,
combining the five part models, resampling back, undoing the reorientation and writing the
multilabel NIfTI with its label header.

The fake first does what the real call needs before the network runs (resolve nnU-Net's model
folder for dataset/trainer/plans and find the checkpoint), then writes the known segmentation of
fake_rule.py for the resampled image it was given. Knobs (environment variables set by tests):
    TC_FAKE_CENTER   "x,y,z" rule centre in world mm (required)
    TC_FAKE_LOG      file to append one JSON line per model call
    TC_FAKE_SLEEP_S  sleep this long per call, with a child process alive (cancel tests);
    TC_FAKE_PIDFILE  where to write that child's pid
    TC_FAKE_CRASH    raise RuntimeError(<value>) instead of predicting
"""
from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import inspect
import json
import os
import subprocess
import sys
import time
from pathlib import Path

TARGET_MODULE = "totalsegmentator.nnunet"
TARGET_FUNCTION = "nnUNetv2_predict"


def _labels_for(task_id: int) -> dict[str, int]:
    """Class name -> the model's own output id, from TotalSegmentator's tables."""
    from totalsegmentator import map_to_binary as m

    if task_id in m.map_taskid_to_partname_ct:
        table = m.class_map_5_parts[m.map_taskid_to_partname_ct[task_id]]
    elif task_id == 570:
        table = m.class_map["liver_segments"]
    else:  # 297 / 298: one model for all 117 'total' classes
        table = m.class_map["total"]
    return {name: idx for idx, name in table.items()}


def _fake_predict(real, *args, **kwargs):
    import nibabel as nib
    import numpy as np
    import fake_rule
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    call = inspect.signature(real).bind(*args, **kwargs)  # same call contract as the real function
    call.apply_defaults()
    a = call.arguments
    task_id = int(a["task_id"])
    model_folder = Path(get_output_folder(task_id, a["trainer"], a["plans"], a["model"]))
    for fold in a["folds"] or [0]:
        checkpoint = model_folder / f"fold_{fold}" / "checkpoint_final.pth"
        if not checkpoint.is_file():
            raise FileNotFoundError(f"no checkpoint {checkpoint}")
    inputs = sorted(Path(a["dir_in"]).glob("*_0000.nii.gz"))
    if os.environ.get("TC_FAKE_LOG"):
        with open(os.environ["TC_FAKE_LOG"], "a") as log:
            shapes = [list(nib.load(str(p)).shape) for p in inputs]
            log.write(json.dumps({"task_id": task_id, "trainer": a["trainer"], "model_folder": str(model_folder),
                                  "device": str(a["device"]), "input_shapes": shapes}) + "\n")
    if os.environ.get("TC_FAKE_CRASH"):
        raise RuntimeError(os.environ["TC_FAKE_CRASH"])
    if os.environ.get("TC_FAKE_SLEEP_S"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        Path(os.environ["TC_FAKE_PIDFILE"]).write_text(str(child.pid))
        time.sleep(float(os.environ["TC_FAKE_SLEEP_S"]))

    centre = tuple(float(v) for v in os.environ["TC_FAKE_CENTER"].split(","))
    ids = _labels_for(task_id)
    for src in inputs:
        img = nib.load(str(src))
        hu = np.asanyarray(img.dataobj).astype(np.float32)
        r = fake_rule.regions(hu, img.affine, centre)
        seg = np.zeros(hu.shape, dtype=np.uint8)
        if task_id == 570:
            seg = r["segments"]
        else:
            for name in ("liver", "spleen", "vertebrae_L1"):
                if name in ids:
                    seg[r[name]] = ids[name]
        out = Path(a["dir_out"]) / src.name.replace("_0000.nii.gz", ".nii.gz")
        nib.save(nib.Nifti1Image(seg, img.affine), str(out))


class _PatchWhenImported(importlib.abc.MetaPathFinder):
    """Swaps the function in right after TotalSegmentator's own module finished importing."""

    def find_spec(self, fullname, path, target=None):
        if fullname != TARGET_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        real_exec = spec.loader.exec_module

        def exec_module(module):
            real_exec(module)
            real = getattr(module, TARGET_FUNCTION)
            setattr(module, TARGET_FUNCTION, functools.wraps(real)(functools.partial(_fake_predict, real)))
            print(f"[test fake] {TARGET_MODULE}.{TARGET_FUNCTION} replaced", file=sys.stderr)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _PatchWhenImported())
