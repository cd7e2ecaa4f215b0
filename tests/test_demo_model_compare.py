"""training.demo_model.compare: issue 19's rule for replacing the shipped demo model."""
from __future__ import annotations

from training.demo_model.compare import comparison_markdown, demo_case_figures, ship_decision


def _answers(iir_right: int, n: int = 13, p: float = 0.3) -> list[dict]:
    rows = []
    for mode, right in (("iir", iir_right), ("no_iir", 2)):
        for i in range(n):
            sub = "report" if i == n - 1 else "organ_position"
            rows.append({"subtask": sub, "mode": mode, "correct": i < right, "answer": f"a{i}",
                         "abnormal_prob": {"pancreas": p} if mode == "iir" else {}})
    return rows


def _model(avg_iir: float, iir_right: int) -> dict:
    return {"grids": {"cohort": {"iir": {"avg": avg_iir}, "no_iir": {"avg": 0.4}}},
            "demo_case": demo_case_figures(_answers(iir_right))}


def test_demo_case_figures_count_right_answers_per_mode_and_read_the_report_round():
    d = demo_case_figures(_answers(6, p=0.27))
    assert d == {"questions": 13, "iir_right": 6, "no_iir_right": 2, "pancreas_p_abnormal": 0.27, "report_answer": "a12"}


def test_ship_only_when_it_beats_the_cohort_grid_average_and_is_no_worse_on_the_demo_case():
    shipped = _model(0.540, 6)
    assert ship_decision(_model(0.560, 6), shipped)[0]  # better average, demo case equal
    assert ship_decision(_model(0.560, 7), shipped)[0]
    ok, reasons = ship_decision(_model(0.518, 9), shipped)  # v0.5's first build: worse average
    assert not ok and "does not beat" in reasons[0] and "51.8 % vs 54.0 %" in reasons[0]
    ok, reasons = ship_decision(_model(0.600, 5), shipped)  # better average, worse on the demo case
    assert not ok and "5/13 vs 6/13" in reasons[1] and reasons[1].endswith("worse")
    assert not ship_decision(_model(0.540, 6), shipped)[0]  # a tie does not beat it
    table = comparison_markdown(_model(0.560, 7), shipped, ("new", "old"))
    assert "| new | 56.0 / 40.0 | 7 / 2 of 13 | 0.30 |" in table and "| old | 54.0 / 40.0 | 6 / 2 of 13 |" in table
