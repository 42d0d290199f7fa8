"""Eval results as a terminal table, a markdown report and a PNG chart next to the published anchors."""

from __future__ import annotations

import json
from pathlib import Path


def metric_names(result: dict) -> list[str]:
    names: list[str] = []
    for row in result["metrics"].values():
        names.extend(m for m in row if m not in names)
    return names


def table(result: dict, markdown: bool = False) -> str:
    """Modes as rows, metrics as columns, then the published anchors and the latency."""
    metrics = metric_names(result)
    header = ["mode", *metrics, "p50 ms"]
    rows = [
        [
            mode,
            *(f"{row.get(m, float('nan')):.4f}" for m in metrics),
            f"{result['latency'].get(mode, {}).get('p50_ms', 0):.1f}",
        ]
        for mode, row in result["metrics"].items()
    ]
    for metric, anchors in result.get("anchors", {}).items():
        for name, value in anchors.items():
            rows.append([f"{name} (published)", *(f"{value:.4f}" if m == metric else "" for m in metrics), ""])
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def fmt(r: list) -> str:
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )

    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows)])


def category_table(result: dict) -> str:
    """LoCoMo: each mode's recalls per question category, as markdown."""
    out = []
    for mode, cats in result.get("per_category", {}).items():
        if not cats:
            continue
        metrics = [m for m in next(iter(cats.values())) if m != "queries"]
        out.append(f"**{mode}**\n")
        out.append("| category | queries | " + " | ".join(metrics) + " |")
        out.append("|" + "---|" * (len(metrics) + 2))
        for cat, row in cats.items():
            out.append(f"| {cat} | {row['queries']} | " + " | ".join(f"{row[m]:.4f}" for m in metrics) + " |")
        out.append("")
    return "\n".join(out)


def chart(result: dict, path: Path) -> None:
    """Grouped bars: one group per metric, one bar per mode, published anchors as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = metric_names(result)
    modes = list(result["metrics"])
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(metrics) + 2), 4.5))
    width = 0.8 / max(len(modes), 1)
    for i, mode in enumerate(modes):
        xs = [j + (i - (len(modes) - 1) / 2) * width for j in range(len(metrics))]
        ys = [result["metrics"][mode].get(m, 0.0) for m in metrics]
        bars = ax.bar(xs, ys, width, label=mode)
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=1)
    styles = ["--", ":", "-.", (0, (5, 1)), (0, (1, 1))]
    style_of: dict[str, object] = {}
    for j, m in enumerate(metrics):
        for name, value in result.get("anchors", {}).get(m, {}).items():
            first = name not in style_of
            ls = style_of.setdefault(name, styles[len(style_of) % len(styles)])
            ax.hlines(
                value,
                j - 0.45,
                j + 0.45,
                colors="black",
                linestyles=ls,
                linewidth=1,
                label=f"{name} (published)" if first else None,
            )
    ax.set_xticks(range(len(metrics)), metrics)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.set_title(f"ctxsearch eval: {result['dataset']} ({result['queries']} queries)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(result: dict, folder: Path) -> list[Path]:
    """`<dataset>.md`, `<dataset>.png` and `<dataset>.json` in folder."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = result["dataset"] + (f"-{result['split']}" if result.get("split") else "")
    md, png, js = folder / f"{stem}.md", folder / f"{stem}.png", folder / f"{stem}.json"
    chart(result, png)
    parts = [
        f"# ctxsearch eval: {result['dataset']}",
        "",
        f"{result['documents']} documents, {result['queries']} queries"
        + (f", split `{result['split']}`" if result.get("split") else "")
        + f"; modes {', '.join(result['modes'])}.",
        "Rows marked *published* are the anchors from the literature, not measured here.",
        "",
        table(result, markdown=True),
        "",
        f"![{result['dataset']}]({png.name})",
    ]
    if result.get("per_category"):
        parts += ["", "## Per question category", "", category_table(result)]
    md.write_text("\n".join(parts) + "\n")
    js.write_text(json.dumps(result, indent=2) + "\n")
    return [md, png, js]
