"""Screenshots of a render window at its native resolution, as arrays and PNG files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkRenderingCore import vtkRenderWindow, vtkWindowToImageFilter


def grab(render_window: vtkRenderWindow) -> np.ndarray:
    """Render now and read back the pixels: (H, W, 3) uint8, row 0 = top of the screen.

    Reads the back buffer after an explicit render, so overlapping windows or an unmapped Xvfb
    screen do not matter. Call on the GUI thread.
    """
    render_window.Render()
    grabber = vtkWindowToImageFilter()
    grabber.SetInput(render_window)
    grabber.SetInputBufferTypeToRGB()
    grabber.ReadFrontBufferOff()
    grabber.ShouldRerenderOff()
    grabber.SetScale(1)
    grabber.Update()
    img = grabber.GetOutput()
    w, h, _ = img.GetDimensions()
    arr = vtk_to_numpy(img.GetPointData().GetScalars()).reshape(h, w, -1)
    return np.ascontiguousarray(arr[::-1, :, :3])  # VTK rows start at the bottom


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write an (H, W, 3|4) uint8 image as PNG; creates the folder. Returns the path."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(image)).save(path, format="PNG")
    return path


def save_screenshot(render_window: vtkRenderWindow, path: str | Path) -> Path:
    """Grab a render window and write it as PNG at native resolution."""
    return save_png(grab(render_window), path)
