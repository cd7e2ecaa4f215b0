"""Smoothed organ surfaces for the 3D view, built per label on demand and cached.

Each label's surface comes from vtkSurfaceNets3D (smoothing built in) run on that label's
bounding-box crop only, so one organ costs in proportion to its size, not the volume's. Points are
mapped to world RAS mm with the case affine in numpy, then normals are computed in world space
(correct lighting for mirrored affines too). Qt-free; VTK data objects only, called from the GUI
thread by the 3D view in small steps (one label per event-loop turn).
"""
from __future__ import annotations

import time

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonDataModel import vtkImageData, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkPolyDataNormals, vtkSurfaceNets3D

from viewer.label_boxes import LabelBoxes

SMOOTHING_ITERATIONS = 16
MAX_CROP_VOXELS = 24_000_000  # bigger crops are built at half resolution (a 3D view needs no more)


class SurfaceCache:
    """Per-label surfaces (vtkPolyData in world RAS mm) of one label map (I, J, K) uint8."""

    def __init__(self, labels: np.ndarray, affine: np.ndarray, boxes: LabelBoxes | None = None,
                 iterations: int = SMOOTHING_ITERATIONS):
        self.labels = labels
        self.affine = np.asarray(affine, dtype=float)
        self.boxes = boxes if boxes is not None else LabelBoxes(labels)
        self.iterations = iterations
        self._cache: dict[int, vtkPolyData | None] = {}
        self.build_seconds: dict[int, float] = {}

    def __contains__(self, label_id: int) -> bool:
        return int(label_id) in self._cache

    def cached_ids(self) -> list[int]:
        return sorted(self._cache)

    def get(self, label_id: int) -> vtkPolyData | None:
        """The label's surface, building it on first use; None when the label is absent."""
        label_id = int(label_id)
        if label_id not in self._cache:
            t0 = time.perf_counter()
            self._cache[label_id] = self._build(label_id)
            self.build_seconds[label_id] = time.perf_counter() - t0
        return self._cache[label_id]

    def build_all(self, label_ids: list[int] | None = None) -> dict[int, vtkPolyData | None]:
        ids = self.boxes.ids() if label_ids is None else label_ids
        return {i: self.get(i) for i in ids}

    def clear(self) -> None:
        self._cache.clear()
        self.build_seconds.clear()

    def _build(self, label_id: int) -> vtkPolyData | None:
        found = self.boxes.mask_in_box([label_id], pad=1)
        if found is None:
            return None
        mask, origin = found
        step = 2 if mask.size > MAX_CROP_VOXELS else 1
        if step > 1:
            mask = mask[::step, ::step, ::step]
        binary = np.ascontiguousarray(mask, dtype=np.uint8)
        a, b, c = binary.shape
        img = vtkImageData()
        img.SetDimensions(c, b, a)  # C order: VTK x runs along the crop's last axis (k)
        scalars = numpy_to_vtk(binary.reshape(-1), deep=False)
        img.GetPointData().SetScalars(scalars)
        nets = vtkSurfaceNets3D()
        nets.SetInputData(img)
        nets.SetLabel(0, 1)
        nets.SetBackgroundLabel(0)
        nets.SetOutputMeshTypeToTriangles()
        nets.SetSmoothing(self.iterations > 0)
        nets.SetNumberOfIterations(self.iterations)
        nets.Update()
        out = nets.GetOutput()
        if out.GetNumberOfPoints() == 0:
            return None
        pts = vtk_to_numpy(out.GetPoints().GetData()).astype(np.float64)
        ijk = pts[:, ::-1] * step + np.asarray(origin, dtype=np.float64)  # (x, y, z) = (k, j, i)
        world = ijk @ self.affine[:3, :3].T + self.affine[:3, 3]
        out.GetPoints().SetData(numpy_to_vtk(world.astype(np.float32), deep=True))
        out.GetCellData().Initialize()  # boundary label pairs are meaningless for one organ
        out.GetPointData().Initialize()
        if np.linalg.det(self.affine[:3, :3]) > 0:
            # (x, y, z) = (k, j, i) mirrors space: reverse each triangle so its front faces outward
            conn = vtk_to_numpy(out.GetPolys().GetConnectivityArray()).reshape(-1, 3)
            conn[:, [1, 2]] = conn[:, [2, 1]].copy()
            out.GetPolys().Modified()
        normals = vtkPolyDataNormals()
        normals.SetInputData(out)
        normals.SplittingOff()
        normals.ConsistencyOff()
        normals.AutoOrientNormalsOff()
        normals.ComputeCellNormalsOff()
        normals.Update()
        poly = vtkPolyData()
        poly.ShallowCopy(normals.GetOutput())
        return poly
