"""Scores of imported benchmark questions in the benchmark's own categories, beside Table 1's columns.

DeepTumorVQA's leaderboard (its ``eval/metrics.py``): accuracy per subtype; per super-type (category)
the subtypes' accuracies weighted by their question counts; overall the micro average over all
questions. In multiple-choice form each question is right or wrong, so both weighted means are plain
shares of right answers; the figures are comparable to its "mc" column. Our scorer reads the chosen
option from the conclusion's letter or text (eval_metrics.choose_option); the leaderboard reads the
letter only, so a conclusion naming the right option text after a wrong letter counts here and not there.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

from . import deeptumorvqa

CATEGORY_ORDER = {deeptumorvqa.NAME: deeptumorvqa.CATEGORIES}


def _acc(k: int, n: int) -> dict:
    return {"n": n, "correct": k, "accuracy": k / n if n else None}


def benchmark_tables(rows: Sequence[dict]) -> dict:
    """{benchmark name: {"overall", "categories", "subcategories"}} of scored rows that carry "benchmark"."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r.get("benchmark") and r.get("correct") is not None:
            groups[r["benchmark"]["name"]].append(r)
    out = {}
    for name, mine in groups.items():
        cats: dict[str, list[bool]] = defaultdict(list)
        subs: dict[str, list[bool]] = defaultdict(list)
        for r in mine:
            cats[r["benchmark"]["category"]].append(bool(r["correct"]))
            subs[r["benchmark"]["subcategory"]].append(bool(r["correct"]))
        order = [c for c in CATEGORY_ORDER.get(name, ()) if c in cats] + sorted(set(cats) - set(CATEGORY_ORDER.get(name, ())))
        out[name] = {"overall": _acc(sum(r["correct"] for r in mine), len(mine)),
                     "categories": {c: _acc(sum(cats[c]), len(cats[c])) for c in order},
                     "subcategories": {s: _acc(sum(v), len(v)) for s, v in sorted(subs.items())}}
    return out


def markdown(results: dict) -> str:
    """One table per benchmark: a row per mode, a column per category, then overall."""
    from training.eval_report import MODE_NAMES

    names = sorted({b for t in results["modes"].values() for b in t.get("benchmarks", {})})
    lines = []
    for name in names:
        cats = list(dict.fromkeys(c for t in results["modes"].values() for c in t.get("benchmarks", {}).get(name, {}).get("categories", {})))
        head = ["Mode"] + [c.title() for c in cats] + ["Overall"]
        lines += ["", f"{name} (its own categories, as its leaderboard aggregates them):", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for mode, table in results["modes"].items():
            b = table.get("benchmarks", {}).get(name)
            if not b:
                continue
            cells = [MODE_NAMES.get(mode, mode)] + [_pct(b["categories"].get(c)) for c in cats] + [_pct(b["overall"])]
            lines.append("| " + " | ".join(cells) + " |")
        first = next(t["benchmarks"][name] for t in results["modes"].values() if name in t.get("benchmarks", {}))
        lines += ["", f"Accuracy in %, {first['overall']['n']} questions ("
                  + ", ".join(f"{c} {first['categories'][c]['n']}" for c in cats if c in first["categories"]) + ")."]
    return "\n".join(lines) + ("\n" if lines else "")


def _pct(cell: dict | None) -> str:
    return "-" if not cell or cell["accuracy"] is None else f"{100.0 * cell['accuracy']:.1f}"
