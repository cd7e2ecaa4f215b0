"""Benchmark: CT loading time and peak memory, ours vs a plain library read of the same files.

    python benchmarks/bench_ct_load.py                      # 512 x 512 x 400, 3 repeats
    python benchmarks/bench_ct_load.py --size 128 128 40 --repeats 1   # quick

Generates (in a temporary folder) a synthetic abdomen-like int16 volume with realistic noise
(so gzip compresses it about as much as a real CT), writes it as a NIfTI .nii.gz (int16,
unscaled) and as a DICOM series (one uncompressed explicit-VR file per slice, uint16 stored
values with RescaleIntercept -1024, 12 bits stored), then times:

  nifti baseline  np.asanyarray(nib.load(p).dataobj)
  nifti ours      inference.ct_io.load_ct(p)
  dicom baseline  np.stack([pydicom.dcmread(f).pixel_array for f in sorted files])
  dicom ours      inference.ct_io.load_ct(folder)
  enhanced baseline  pydicom.dcmread(f).pixel_array of the same slices as one enhanced (multi-frame)
                     CT file (highdicom's legacy converter; frames in slice order)
  enhanced ours      inference.ct_io.load_ct(f)

The NIfTI is also written as int32 and as dcm2niix writes it (int16 stored values with
scl_inter -1024): rows int32_* and scaled_* (nibabel's baseline applies the scaling in float64).

Goals (from the issue): time ours <= 1.0x baseline; peak memory ours <= 1.3x the raw int16
size. These are figures to read, never a pass/fail test.

How memory is measured: every run is a fresh subprocess that first imports the same modules
(numpy, nibabel, pydicom, inference.ct_io) and collects garbage; that idle interpreter is the
baseline. On Linux it then resets its peak-RSS counter (writing "5" to /proc/self/clear_refs),
reads VmRSS, performs the one load, and reads the peak VmHWM: peak extra = VmHWM - VmRSS before.
This is resident memory, so it counts every temporary (gzip buffers, decoded slices, header
objects, C-library allocations), not just numpy's. Where the counter cannot be reset the
fallback is ru_maxrss after minus ru_maxrss before, which can under-count if importing peaked
higher than the load. Files are read once before timing so both readers see a warm page cache.
Times are the median over ``--repeats`` runs, readers interleaved so machine noise hits both.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
KINDS = ("nifti_baseline", "nifti_ours", "int32_baseline", "int32_ours", "scaled_baseline", "scaled_ours",
         "dicom_baseline", "dicom_ours", "enhanced_baseline", "enhanced_ours")


# ---- data -----------------------------------------------------------------------------------

def _slice_image(shape_ij: tuple[int, int], k: int, rng: np.random.Generator) -> np.ndarray:
    """int16 HU (I, J): air, an elliptic body with organs and bone, noise sd 12 HU."""
    ni, nj = shape_ij
    x = np.linspace(-1, 1, ni)[:, None]
    y = np.linspace(-1, 1, nj)[None, :]
    img = np.full((ni, nj), -1000.0, dtype=np.float32)
    body = (x / 0.85) ** 2 + (y / 0.65) ** 2 < 1
    img[body] = 30.0
    img[body & ((x + 0.35) ** 2 / 0.12 + (y + 0.05) ** 2 / 0.08 < 1)] = 60.0  # liver
    img[body & ((x - 0.05) ** 2 + (y - 0.35) ** 2 < 0.01)] = 400.0 + 10 * np.sin(k / 9)  # spine
    img[body & ((x / 0.85) ** 2 + (y / 0.65) ** 2 > 0.8)] = -90.0  # subcutaneous fat
    img += rng.normal(0, 12, size=img.shape).astype(np.float32)
    return np.clip(np.rint(img), -1024, 3071).astype(np.int16)


def make_data(folder: Path, size: tuple[int, int, int]) -> dict[str, Path]:
    import nibabel as nib
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    ni, nj, nk = size
    rng = np.random.default_rng(0)
    vol = np.empty(size, dtype=np.int16, order="F")
    dcm = folder / "dicom"
    dcm.mkdir(parents=True)
    series, study, frame = generate_uid(), generate_uid(), generate_uid()
    spacing, dz = 0.75, 1.0
    for k in range(nk):
        sl = _slice_image((ni, nj), k, rng)
        vol[:, :, k] = sl
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientName, ds.PatientID = "CT", "Bench^Mark", "B1"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.InstanceNumber = k + 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-spacing * ni / 2, -spacing * nj / 2, -dz * k]
        ds.PixelSpacing, ds.SliceThickness = [spacing, spacing], dz
        ds.Rows, ds.Columns = nj, ni
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = (sl.T.astype(np.int32) + 1024).astype(np.uint16).tobytes()
        ds.save_as(dcm / f"IM{k:05d}.dcm", enforce_file_format=True)
    nii = folder / "ct.nii.gz"
    affine = np.diag([-spacing, -spacing, dz, 1.0])
    nib.save(nib.Nifti1Image(vol, affine), nii)
    int32 = folder / "ct_int32.nii.gz"  # what some converters and scripts write
    nib.save(nib.Nifti1Image(vol.astype(np.int32), affine), int32)
    scaled = folder / "ct_scaled.nii.gz"  # what dcm2niix writes: stored values with scl_inter -1024
    img = nib.Nifti1Image((vol.astype(np.int32) + 1024).astype(np.int16), affine)
    img.header.set_slope_inter(1.0, -1024.0)
    nib.save(img, scaled)
    return {"nifti": nii, "int32": int32, "scaled": scaled, "dicom": dcm, "enhanced": _enhanced(dcm, folder)}


def _enhanced(dcm: Path, folder: Path) -> Path:
    """The DICOM series as one Legacy Converted Enhanced CT file (every slice a frame)."""
    import pydicom
    from highdicom.legacy import LegacyConvertedEnhancedCTImage
    from pydicom.uid import generate_uid

    slices = [pydicom.dcmread(p) for p in sorted(dcm.iterdir())]
    mf = LegacyConvertedEnhancedCTImage(slices, series_instance_uid=generate_uid(), series_number=2,
                                        sop_instance_uid=generate_uid(), instance_number=1)
    out = folder / "enhanced.dcm"
    mf.save_as(out, enforce_file_format=True)
    return out


# ---- one measured run (in a fresh interpreter) ------------------------------------------------

def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def _reset_peak() -> bool:
    """Reset this process's peak RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status("VmHWM") <= _status("VmRSS") + 4096 * 16
    except OSError:
        return False


def child(kind: str, path: str) -> None:
    import gc
    import resource

    import nibabel as nib
    import pydicom

    from inference.ct_io import load_ct

    gc.collect()
    exact = _reset_peak()
    before = _status("VmRSS") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    if kind == "enhanced_baseline":
        arr = pydicom.dcmread(path).pixel_array
    elif kind.endswith("_baseline") and not kind.startswith("dicom"):
        arr = np.asanyarray(nib.load(path).dataobj)
    elif kind == "dicom_baseline":
        files = sorted(str(p) for p in Path(path).iterdir())
        arr = np.stack([pydicom.dcmread(f).pixel_array for f in files])
    else:
        arr = load_ct(path).hu
    elapsed = time.perf_counter() - t0
    peak = _status("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"time": elapsed, "extra_peak": peak - before, "exact": exact,
                      "shape": list(arr.shape), "dtype": str(arr.dtype)}))


def run_child(kind: str, path: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path)],
        capture_output=True, text=True, env=env, check=False, timeout=600,
    )
    if out.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _warm_cache(paths: list[Path]) -> None:
    for p in paths:
        files = [p] if p.is_file() else sorted(p.iterdir())
        for f in files:
            with open(f, "rb") as fh:
                while fh.read(1 << 24):
                    pass


def machine() -> str:
    import nibabel
    import pydicom

    try:
        import isal

        isal_v = isal.__version__
    except ImportError:
        isal_v = "not installed"
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{platform.platform()} | {cpus} CPUs usable ({os.cpu_count()} total), load avg {load:.2f} | "
        f"Python {platform.python_version()} | numpy {np.__version__}, nibabel {nibabel.__version__}, "
        f"pydicom {pydicom.__version__}, isal {isal_v}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", nargs=3, type=int, default=[512, 512, 400], metavar=("I", "J", "K"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None, help="where to write the data (default: a temp dir)")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return

    size = tuple(args.size)
    raw = size[0] * size[1] * size[2] * 2
    tmp = Path(tempfile.mkdtemp(prefix="bench_ct_", dir=args.workdir))
    try:
        t0 = time.perf_counter()
        paths = make_data(tmp, size)  # type: ignore[arg-type]
        print(f"data {size[0]}x{size[1]}x{size[2]} int16 = {raw / 2**20:.0f} MiB raw; nii.gz "
              + ", ".join(f"{k} {paths[k].stat().st_size / 2**20:.0f} MiB" for k in ("nifti", "int32", "scaled"))
              + f"; DICOM {len(list(paths['dicom'].iterdir()))} files; written in {time.perf_counter() - t0:.1f} s")
        _warm_cache(list(paths.values()))
        results: dict[str, list[dict]] = {k: [] for k in KINDS}
        for r in range(args.repeats):
            order = KINDS if r % 2 == 0 else tuple(reversed(KINDS))
            for kind in order:
                results[kind].append(run_child(kind, paths[kind.split("_")[0]]))
        print(f"machine: {machine()}")
        print(f"{'reader':<18}{'time s (median)':>16}{'vs baseline':>13}{'peak extra MiB':>16}{'peak / raw':>12}")
        for kind in KINDS:
            t = statistics.median(x["time"] for x in results[kind])
            peak = statistics.median(x["extra_peak"] for x in results[kind])
            base = statistics.median(x["time"] for x in results[kind.split("_")[0] + "_baseline"])
            print(f"{kind:<18}{t:>16.3f}{t / base:>12.2f}x{peak / 2**20:>16.1f}{peak / raw:>11.2f}x")
        print("times per run:", {k: [round(x["time"], 3) for x in v] for k, v in results.items()})
        exact = all(x["exact"] for v in results.values() for x in v)
        print("peak memory:", "VmHWM after reset (exact)" if exact else "ru_maxrss delta (may under-count)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
