"""Evaluation results as files: results.json, a Markdown table in the paper's Table 1 columns, and a
bar chart (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import json
from pathlib import Path

from training.eval_metrics import COLUMNS

MODE_NAMES = {"iir": "with IIR", "no_iir": "w/o IIR"}


def _pct(v) -> str:
    return "-" if v is None else f"{100.0 * v:.1f}"


def markdown_table(results: dict) -> str:
    from training.public_benchmarks.categories import markdown as benchmark_markdown

    modes = results["modes"]
    first = next(iter(modes.values()))
    n_table1 = sum(first["columns"][sub]["n"] for sub, _ in COLUMNS)  # imported benchmark questions are not in it
    if n_table1 == 0 and any(t.get("benchmarks") for t in modes.values()):
        return benchmark_markdown(results).lstrip("\n")
    head = ["Mode"] + [title for _, title in COLUMNS] + ["Avg."]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for mode, table in modes.items():
        cells = [MODE_NAMES.get(mode, mode)]
        cells += [_pct(table["columns"][sub]["accuracy"]) for sub, _ in COLUMNS]
        cells.append(_pct(table["avg"]))
        lines.append("| " + " | ".join(cells) + " |")
    counts = ", ".join(f"{title} {first['columns'][sub]['n']}" for sub, title in COLUMNS if first["columns"][sub]["n"])
    lines.append("")
    lines.append(f"Accuracy in %, {n_table1} samples ({counts}).")
    for mode, table in modes.items():
        extra = []
        if table.get("mean_rounds") is not None:
            extra.append(f"mean rounds {table['mean_rounds']:.2f}")
        if table.get("report_token_f1") is not None:
            extra.append(f"report token F1 {table['report_token_f1']:.3f}")
        cot = table.get("cot_eval")
        if cot and cot.get("n"):
            extra.append(f"TumorChain-Eval (n={cot['n']}): S_FC {cot['S_FC']:.1f}, S_IC {cot['S_IC']:.1f}, "
                         f"S_LRC {cot['S_LRC']:.1f}, CoT_e {cot['CoT_e']:.1f}")
        if extra:
            lines.append(f"{MODE_NAMES.get(mode, mode)}: " + "; ".join(extra) + ".")
    return "\n".join(lines) + "\n" + benchmark_markdown(results)


def plot_results(results: dict, path: Path) -> Path | None:
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(results["modes"])
    cols = [(sub, title) for sub, title in COLUMNS if any(results["modes"][m]["columns"][sub]["n"] for m in modes)]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(cols) + 2), 3.6), dpi=110)
    width = 0.8 / max(len(modes), 1)
    for i, mode in enumerate(modes):
        vals = [100.0 * (results["modes"][mode]["columns"][sub]["accuracy"] or 0.0) for sub, _ in cols]
        ax.bar([x + i * width for x in range(len(cols))], vals, width, label=MODE_NAMES.get(mode, mode))
    ax.set_xticks([x + width * (len(modes) - 1) / 2 for x in range(len(cols))], [t for _, t in cols], rotation=30, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(frameon=False)
    ax.set_title(f"TumorChain evaluation ({results['n_samples']} samples)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_reports(results: dict, out_dir: Path, plot: bool = True) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "results.json", "md": out_dir / "results.md"}
    paths["json"].write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    paths["md"].write_text(markdown_table(results), encoding="utf-8")
    if plot:
        png = plot_results(results, out_dir / "results.png")
        if png is not None:
            paths["png"] = png
    return paths
