"""Optional CT volume rendering in the 3D view (off by default: costly on software OpenGL).

The int16 HU array is shared with VTK without a copy: an F-order buffer (what load_ct returns) is
VTK's own x-fastest layout; a C-order one is read as dimensions (K, J, I) and a user matrix maps
that index order back through the case affine.
"""
from __future__ import annotations

import numpy as np
import vtkmodules.vtkRenderingVolumeOpenGL2  # noqa: F401  (volume mapper backends)
from vtkmodules.util.numpy_support import numpy_to_vtk
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkCommonDataModel import vtkImageData, vtkPiecewiseFunction
from vtkmodules.vtkRenderingCore import vtkColorTransferFunction, vtkVolume, vtkVolumeProperty
from vtkmodules.vtkRenderingVolume import vtkGPUVolumeRayCastMapper

# soft tissue faint, contrast-filled vessels and bone opaque: a generic "CT-AAA"-like ramp
_OPACITY = ((-1000, 0.0), (100, 0.0), (200, 0.08), (400, 0.25), (1500, 0.6), (3000, 0.8))
_COLOUR = ((-1000, (0.0, 0.0, 0.0)), (100, (0.55, 0.25, 0.15)), (250, (0.9, 0.55, 0.4)),
           (500, (1.0, 0.9, 0.8)), (3000, (1.0, 1.0, 1.0)))


class CtVolumeProp:
    """A vtkVolume that shows the state's CT when given one, nothing otherwise."""

    def __init__(self) -> None:
        self.volume = vtkVolume()
        self.mapper = vtkGPUVolumeRayCastMapper()
        self.mapper.SetAutoAdjustSampleDistances(True)
        self.volume.SetMapper(self.mapper)
        prop = vtkVolumeProperty()
        opacity = vtkPiecewiseFunction()
        for hu, a in _OPACITY:
            opacity.AddPoint(hu, a)
        colour = vtkColorTransferFunction()
        for hu, rgb in _COLOUR:
            colour.AddRGBPoint(hu, *rgb)
        prop.SetScalarOpacity(opacity)
        prop.SetColor(colour)
        prop.ShadeOn()
        prop.SetAmbient(0.35)
        prop.SetDiffuse(0.75)
        prop.SetSpecular(0.15)
        prop.SetInterpolationTypeToLinear()
        self.volume.SetProperty(prop)
        self.volume.VisibilityOff()
        self._image: vtkImageData | None = None

    def set_ct(self, ct) -> None:
        """Show ``ct`` (a CTVolume) or, with None, hide and release the shared buffer."""
        if ct is None:
            self.volume.VisibilityOff()
            self._image = None
            self.mapper.RemoveAllInputs()
            return
        hu = ct.hu
        img = vtkImageData()
        perm = np.eye(4)
        if hu.flags.f_contiguous:  # loaders' layout: VTK's x-fastest order is the voxel order
            img.SetDimensions(*hu.shape)
            flat = hu.ravel(order="F")
        else:  # C order: VTK index (x, y, z) = voxel (k, j, i)
            hu = np.ascontiguousarray(hu)
            img.SetDimensions(hu.shape[2], hu.shape[1], hu.shape[0])
            flat = hu.reshape(-1)
            perm = np.zeros((4, 4))
            perm[0, 2] = perm[1, 1] = perm[2, 0] = perm[3, 3] = 1.0
        img.GetPointData().SetScalars(numpy_to_vtk(flat, deep=False))
        self._image = img
        self.mapper.SetInputData(img)
        m = np.asarray(ct.affine, dtype=float) @ perm
        mat = vtkMatrix4x4()
        for r in range(4):
            for c in range(4):
                mat.SetElement(r, c, float(m[r, c]))
        self.volume.SetUserMatrix(mat)
        self.volume.VisibilityOn()
