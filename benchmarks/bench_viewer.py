"""Viewer benchmark: a 512x512x400 CT with a 40-organ label map in the workstation window.

Measures, under the X server and OpenGL the machine has (Xvfb + llvmpipe on CI):
  - time to first frame after a case is handed to the views (all four views rendered);
  - slice-change latency over 200 wheel steps per plane (median, p95; all three slice views
    re-render: the wheeled view's slice and the crosshair in the other two);
  - time to build all 40 organ surfaces (per organ, as the 3D view does);
  - RSS after each of ten case loads in a row.
Baselines measured in the same run: a bare re-render of the three slice views with nothing changed
(the floor any slice change pays) and one vtkSurfaceNets3D pass over the whole label map.

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/bench_viewer.py [--size 512 512 400]
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ORGAN_IDS = [i for i in range(1, 57) if i not in (10, 11, 12, 13, 14, 16, 17, 22, 27, 29, 30, 31, 40, 41, 42, 43)][:40]


def make_case(shape=(512, 512, 400), spacing=(0.8, 0.8, 1.0), n_organs=40, seed=0):
    """Synthetic CT (int16) + merged-scheme labels (uint8): a body cylinder and n ellipsoid organs."""
    from inference.ct_volume import CTVolume
    from inference.segmentation.organ_masks import OrganMasks

    rng = np.random.default_rng(seed)
    nx, ny, nz = shape
    # F order, as load_ct returns NIfTI and DICOM volumes (and the app's loader lays labels out)
    hu = np.full(shape, -1000, dtype=np.int16, order="F")
    labels = np.zeros(shape, dtype=np.uint8, order="F")
    x = (np.arange(nx) - nx / 2)[:, None] / (0.42 * nx)
    y = (np.arange(ny) - ny / 2)[None, :] / (0.34 * ny)
    body = (x ** 2 + y ** 2) < 1  # (nx, ny) cross-section, every slice
    hu[body] = 30
    for k in range(nz):  # slice by slice: no 400 MB temporary
        hu[:, :, k] += rng.integers(-12, 13, size=(nx, ny), dtype=np.int16) * body
    ids = ORGAN_IDS[:n_organs]
    for lid in ids:
        r = rng.uniform(0.03, 0.12, 3) * np.array(shape)
        c = rng.uniform(0.3, 0.7, 3) * np.array(shape)
        lo = np.maximum((c - r).astype(int), 0)
        hi = np.minimum((c + r).astype(int) + 1, shape)
        gx, gy, gz = (((np.arange(lo[a], hi[a]) - c[a]) / r[a]) for a in range(3))
        inside = gx[:, None, None] ** 2 + gy[None, :, None] ** 2 + gz[None, None, :] ** 2 < 1
        sl = tuple(slice(lo[a], hi[a]) for a in range(3))
        labels[sl][inside] = lid
        hu[sl][inside] = int(rng.integers(20, 200))
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -np.asarray(spacing) * (np.asarray(shape) - 1) / 2
    ct = CTVolume(hu, affine, Path(f"synthetic_{seed}.nii.gz"), series_description=f"benchmark case {seed}")
    return ct, OrganMasks(labels, affine.copy(), "benchmark")


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 1e6


def x_server():
    """The X server process drawing our display (Xvfb), to count its CPU time too; None if unknown."""
    import psutil

    display = os.environ.get("DISPLAY", "")
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] in ("Xvfb", "Xorg") and display and display in (proc.info["cmdline"] or []):
            return proc
    return None


def cpu_seconds(xserver) -> float:
    """CPU time used so far by this process (all threads, llvmpipe's included) and the X server."""
    t = time.process_time()
    if xserver is not None:
        ct = xserver.cpu_times()
        t += ct.user + ct.system
    return t


def wheel_latencies(app, win, plane: str, steps: int, cpu: list | None = None) -> list[float]:
    """Seconds from a wheel event to all three slice views showing the new state, per step (CPU
    seconds per step appended to ``cpu`` when given). The wheeled view renders a new VTK frame; the
    other two repaint their crosshair."""
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent

    view = getattr(win, plane)
    slices = (win.axial, win.coronal, win.sagittal)
    done = set()
    slots = [(v, (lambda v=v: done.add(id(v)))) for v in slices]
    for v, slot in slots:
        v.painted.connect(slot)
    pos = QPointF(view.width() / 2, view.height() / 2)
    out = []
    direction = 1
    xserver = x_server()
    c0 = cpu_seconds(xserver)
    for i in range(steps):
        if view.slice_index in (0, view.geometry.n_slices - 1) and i:
            direction = -direction
        ev = QWheelEvent(pos, view.mapToGlobal(pos), QPoint(0, 0), QPoint(0, 120 * direction),
                         Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
        done.clear()
        t0 = time.perf_counter()
        app.sendEvent(view, ev)
        while len(done) < 3:
            app.processEvents()
        out.append(time.perf_counter() - t0)
    if cpu is not None:
        cpu.append((cpu_seconds(xserver) - c0) / steps)
    for v, slot in slots:
        v.painted.disconnect(slot)
    return out


def bare_renders(win, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        for v in (win.axial, win.coronal, win.sagittal):
            v.render_now()
        out.append(time.perf_counter() - t0)
    return out


def p95(xs: list[float]) -> float:
    return float(np.percentile(xs, 95))


def surfaces_all_at_once(labels: np.ndarray, ids: list[int]) -> float:
    """Baseline: one vtkSurfaceNets3D pass over the whole map with every label."""
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkFiltersCore import vtkSurfaceNets3D

    t0 = time.perf_counter()
    img = vtkImageData()
    labels = np.asfortranarray(labels)  # VTK's x-fastest order, no copy for loader-made arrays
    img.SetDimensions(*labels.shape)
    img.GetPointData().SetScalars(numpy_to_vtk(labels.ravel(order="F"), deep=False))
    nets = vtkSurfaceNets3D()
    nets.SetInputData(img)
    for i, lid in enumerate(ids):
        nets.SetLabel(i, lid)
    nets.SetNumberOfIterations(16)
    nets.Update()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, nargs=3, default=(512, 512, 400))
    ap.add_argument("--organs", type=int, default=40)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--loads", type=int, default=10)
    args = ap.parse_args(argv)
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0]])
    from app.main_window import MainWindow
    from viewer.label_boxes import LabelBoxes
    from viewer.surfaces import SurfaceCache

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"case {tuple(args.size)} with {args.organs} organs")
    t0 = time.perf_counter()
    ct, masks = make_case(tuple(args.size), n_organs=args.organs, seed=0)
    print(f"synthetic case made in {time.perf_counter() - t0:.1f} s")
    win = MainWindow()
    win.resize(1600, 1000)
    win.show()
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    gl = win.axial.GetRenderWindow().ReportCapabilities().splitlines()
    print("OpenGL:", next((ln.strip() for ln in gl if "renderer string" in ln), "?"))

    # --- time to first frame --------------------------------------------------------------
    boxes = (LabelBoxes(masks.organs).precompute(), None)  # the loader thread does this part
    t0 = time.perf_counter()
    win.state.set_case(ct, masks, boxes)
    win.render_all()
    first = time.perf_counter() - t0
    print(f"time to first frame after load: {first * 1000:.0f} ms (4 views, "
          f"{win.axial.width()}x{win.axial.height()} px each)")
    win.volume._queue.clear()  # keep surface building out of the slice timings (measured below)

    # --- slice change ---------------------------------------------------------------------
    bare = bare_renders(win, 50)
    print(f"baseline, full VTK re-render of the 3 slice views: median {statistics.median(bare) * 1000:.1f} ms, "
          f"p95 {p95(bare) * 1000:.1f} ms")
    for plane in ("axial", "coronal", "sagittal"):
        cpu: list[float] = []
        lat = wheel_latencies(app, win, plane, args.steps, cpu)
        med, hi = statistics.median(lat), p95(lat)
        print(f"slice change ({plane} wheel, {args.steps} steps, 3 views updated): median {med * 1000:.1f} ms, "
              f"p95 {hi * 1000:.1f} ms; p95 / full-re-render p95 = {hi / p95(bare):.2f}; "
              f"CPU {cpu[0] * 1000:.1f} ms per step (viewer + X server, both cores)"
              f"  [goal p95 < 33 ms: {'met' if hi < 0.033 else 'NOT met'}]")

    # --- surfaces ---------------------------------------------------------------------------
    ids = boxes[0].ids()
    cache = SurfaceCache(masks.organs, masks.affine, boxes=boxes[0])
    t0 = time.perf_counter()
    built = cache.build_all(ids)
    t_all = time.perf_counter() - t0
    tris = sum(p.GetNumberOfCells() for p in built.values() if p is not None)
    slowest = max(cache.build_seconds.items(), key=lambda kv: kv[1])
    base = surfaces_all_at_once(masks.organs, ids)
    print(f"all {len(ids)} organ surfaces, per organ: {t_all:.2f} s ({tris / 1e6:.2f} M triangles; slowest "
          f"organ {slowest[1] * 1000:.0f} ms)  [goal < 5 s: {'met' if t_all < 5 else 'NOT met'}]")
    print(f"baseline, one SurfaceNets3D pass over the whole map: {base:.2f} s; ratio {t_all / base:.2f}")
    del cache, built

    # --- memory over ten loads --------------------------------------------------------------
    rss = []
    for n in range(args.loads):
        del ct, masks
        ct, masks = make_case(tuple(args.size), n_organs=args.organs, seed=n + 1)
        b = (LabelBoxes(masks.organs).precompute(), None)
        win.state.set_case(ct, masks, b)
        win.state.set_highlight([ids[n % len(ids)]])
        win.volume.build_visible_now()
        win.render_all()
        win.state.clear_highlight()
        gc.collect()
        rss.append(rss_mb())
        print(f"  load {n + 1}: RSS {rss[-1]:.0f} MB")
    case_mb = (ct.hu.nbytes + masks.organs.nbytes) / 1e6
    print(f"RSS over {args.loads} loads: first {rss[0]:.0f} MB, last {rss[-1]:.0f} MB, growth after load 3: "
          f"{rss[-1] - rss[min(2, len(rss) - 1)]:.0f} MB (one case = {case_mb:.0f} MB)")
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
