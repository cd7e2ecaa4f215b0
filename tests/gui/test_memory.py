"""Opening ten cases in a row through the window does not grow memory (RSS)."""
from __future__ import annotations

import gc

import psutil
import pytest

from viewer_cases import write_case_folder


@pytest.mark.slow
def test_ten_case_loads_do_not_leak(qtbot, tmp_path):
    from app.main_window import MainWindow

    folders = [write_case_folder(tmp_path / f"case{i}", ("ras", "lps", "kji")[i], shape_ras=(128, 120, 72),
                                 spacing=(1.5, 1.5, 2.0), shift=(3.0 * i, 0, 0)) for i in range(3)]
    case_mb = 128 * 120 * 72 * 3 / 1e6  # int16 CT + uint8 labels
    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    qtbot.waitExposed(win)
    proc = psutil.Process()
    rss = []
    for n in range(10):
        win.open_path(folders[n % 3])
        win.wait_for_load()
        assert win.last_error is None, win.last_error
        st = win.state
        st.set_highlight(["liver"])  # exercise every view: highlight, surfaces, volume rendering
        st.set_volume_rendering(n in (1, 6))  # software volume rendering is slow: twice is enough
        win.volume.build_visible_now()
        win.render_all()
        st.clear_highlight()
        gc.collect()
        rss.append(proc.memory_info().rss / 1e6)
    growth = rss[-1] - rss[2]  # after warm-up (allocator pools, GL textures, caches)
    print(f"RSS MB per load: {[round(r) for r in rss]}; growth loads 3..10: {growth:.1f} MB "
          f"(one case = {case_mb:.1f} MB)")
    # a view holding on to old cases would add a case (or more) per load: 7 cases here
    assert growth < 3 * case_mb, f"RSS grew {growth:.0f} MB over 7 loads: {rss}"
    assert rss[-1] - rss[-5] < case_mb, f"RSS still growing over the last loads: {rss}"
    win.close()
