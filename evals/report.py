"""Eval results as a terminal table, a markdown report and PNG charts next to the published
anchors, with the spread across units beside each pooled figure."""

from __future__ import annotations

import json
from pathlib import Path


def metric_names(result: dict) -> list[str]:
    names: list[str] = []
    for row in result["metrics"].values():
        names.extend(m for m in row if m not in names)
    return names


def _cell(result: dict, mode: str, metric: str) -> str:
    """The pooled figure, and `± std` across units where the result has a spread."""
    value = result["metrics"][mode].get(metric, float("nan"))
    sd = result.get("spread", {}).get(mode, {}).get(metric, {}).get("std")
    return f"{value:.4f}" + (f" ± {sd:.3f}" if sd is not None else "")


def spread_note(result: dict) -> str:
    """What the `±` in the table means, or nothing where the result has no spread."""
    spreads = result.get("spread") or {}
    units = next((s.get("units") for row in spreads.values() for s in row.values()), None)
    if not units:
        return ""
    return f"± is the standard deviation of the figure across {units} {result.get('spread_unit', 'unit')}s."


def table(result: dict, markdown: bool = False) -> str:
    """Modes as rows, metrics as columns (± the spread across units), then the published
    anchors and the latency."""
    metrics = metric_names(result)
    header = ["mode", *metrics, "p50 ms"]
    rows = [
        [
            mode,
            *(_cell(result, mode, m) for m in metrics),
            f"{result['latency'].get(mode, {}).get('p50_ms', 0):.1f}",
        ]
        for mode in result["metrics"]
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


def category_table(result: dict, key: str = "per_category", label: str = "category") -> str:
    """Each mode's metrics per group of queries (LoCoMo question category, agent-sessions query
    kind, a spread unit), as markdown."""
    out = []
    for mode, cats in result.get(key, {}).items():
        if not cats:
            continue
        metrics = [m for m in next(iter(cats.values())) if m != "queries"]
        out.append(f"**{mode}**\n")
        out.append(f"| {label} | queries | " + " | ".join(metrics) + " |")
        out.append("|" + "---|" * (len(metrics) + 2))
        for cat, row in cats.items():
            out.append(f"| {cat} | {row['queries']} | " + " | ".join(f"{row[m]:.4f}" for m in metrics) + " |")
        out.append("")
    return "\n".join(out)


def kind_table(result: dict) -> str:
    """Agent sessions: one row per query kind, one column per mode and metric, as markdown."""
    per_kind = result.get("per_kind") or {}
    if not per_kind:
        return ""
    modes = list(per_kind)
    metrics = metric_names(result)
    kinds = list(dict.fromkeys(k for mode in modes for k in per_kind[mode]))
    header = ["kind", "queries", *(f"{mode} {m.removeprefix('session_')}" for m in metrics for mode in modes)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for kind in kinds:
        n = next(per_kind[mode][kind]["queries"] for mode in modes if kind in per_kind[mode])
        cells = [f"{per_kind[mode][kind][m]:.3f}" if kind in per_kind[mode] else "" for m in metrics for mode in modes]
        lines.append(f"| {kind} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def spread_table(result: dict) -> str:
    """Per mode and metric: the pooled figure beside the mean, std, min and max across units, as markdown."""
    spreads = result.get("spread") or {}
    if not spreads:
        return ""
    unit = result.get("spread_unit", "unit")
    lines = [
        f"| mode | metric | pooled | mean over {unit}s | std | min | max | {unit}s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode, row in spreads.items():
        for metric, s in row.items():
            if not s.get("units"):
                continue
            pooled = result["metrics"].get(mode, {}).get(metric, float("nan"))
            lines.append(
                f"| {mode} | {metric} | {pooled:.4f} | {s['mean']:.4f} | {s['std']:.4f} | {s['min']:.4f} "
                f"| {s['max']:.4f} | {s['units']} |"
            )
    return "\n".join(lines)


def cross_project_table(result: dict) -> str:
    """Agent sessions: each query asked in the other projects, where nothing is relevant, as markdown."""
    cross = result.get("cross_project") or {}
    rows = cross.get("modes") or {}
    if not rows:
        return ""

    def q(d: dict, k: str) -> str:
        return f"{d[k]:.3f}" if d.get("n") else "-"

    def share(v: float | None) -> str:
        return "-" if v is None else f"{v:.1%}"

    lines = [
        "| mode | searches | with hits | hits (mean) | top score own / other p50 "
        "| best cosine own p10 / p50 | best cosine other p50 / p90 / max | best text own / other p50 "
        f"| own conf ≥ {cross['confidence_at_least']} | other conf ≥ {cross['confidence_at_least']} |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, r in rows.items():
        own, other = r["top_cosine_own"], r["top_cosine_other"]
        lines.append(
            f"| {mode} | {r['other_project_searches']} | {share(r['with_hits'])} | {r['hits_mean']:.1f} "
            f"| {q(r['top_score_own'], 'p50')} / {q(r['top_score_other'], 'p50')} "
            f"| {q(own, 'p10')} / {q(own, 'p50')} | {q(other, 'p50')} / {q(other, 'p90')} / {q(other, 'max')} "
            f"| {q(r['top_text_own'], 'p50')} / {q(r['top_text_other'], 'p50')} "
            f"| {share(r['confident_own'])} | {share(r['confident_other'])} |"
        )
    return "\n".join(lines)


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
        # Error bars: the standard deviation across units, where the result has a spread.
        sds = [result.get("spread", {}).get(mode, {}).get(m, {}).get("std") for m in metrics]
        yerr = [sd or 0.0 for sd in sds] if any(sd is not None for sd in sds) else None
        bars = ax.bar(xs, ys, width, label=mode, yerr=yerr, capsize=2, error_kw={"linewidth": 0.8})
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


def kinds_chart(result: dict, path: Path) -> None:
    """Agent sessions: bars per query kind, one per mode, one panel per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_kind = result["per_kind"]
    modes = [m for m in per_kind if m != "bm25"] or list(per_kind)
    metrics = metric_names(result)
    kinds = list(dict.fromkeys(k for mode in modes for k in per_kind[mode]))
    fig, axes = plt.subplots(len(metrics), 1, figsize=(max(7.0, 1.1 * len(kinds) + 2), 3.2 * len(metrics)))
    axes = axes if len(metrics) > 1 else [axes]
    width = 0.8 / max(len(modes), 1)
    for ax, metric in zip(axes, metrics, strict=True):
        for i, mode in enumerate(modes):
            xs = [j + (i - (len(modes) - 1) / 2) * width for j in range(len(kinds))]
            ys = [per_kind[mode].get(k, {}).get(metric, 0.0) for k in kinds]
            bars = ax.bar(xs, ys, width, label=mode)
            ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)
        counts = [next((per_kind[m][k]["queries"] for m in modes if k in per_kind[m]), 0) for k in kinds]
        ax.set_xticks(range(len(kinds)), [f"{k}\n({n})" for k, n in zip(kinds, counts, strict=True)], fontsize=7)
        ax.set_ylim(0, 1.1)
        ax.set_ylabel(metric)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_title(f"ctxsearch eval: {result['dataset']} per query kind (queries)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(result: dict, folder: Path) -> list[Path]:
    """`<dataset>.md`, `<dataset>.png` and `<dataset>.json` in folder (and `<dataset>-kinds.png`
    for agent sessions)."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = result["dataset"] + (f"-{result['split']}" if result.get("split") else "")
    md, png, js = folder / f"{stem}.md", folder / f"{stem}.png", folder / f"{stem}.json"
    chart(result, png)
    written = [md, png, js]
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
        spread_note(result),
        "",
        f"![{result['dataset']}]({png.name})",
    ]
    if result.get("per_category"):
        parts += ["", "## Per question category", "", category_table(result)]
    if result.get("per_kind"):
        kinds_png = folder / f"{stem}-kinds.png"
        kinds_chart(result, kinds_png)
        written.append(kinds_png)
        parts += ["", "## Per query kind", "", kind_table(result), "", f"![per kind]({kinds_png.name})"]
    if result.get("spread"):
        unit = result.get("spread_unit", "unit")
        parts += ["", f"## Spread across {unit}s", "", spread_table(result)]
        parts += ["", f"Per {unit}:", "", category_table(result, key="per_unit", label=unit)]
    if result.get("cross_project"):
        parts += [
            "",
            "## Queries asked in the other projects",
            "",
            f"Each query searched (limit {result['cross_project']['limit']}) in every project but its own, "
            "where nothing is relevant; the own-project top score is the same query in its own project.",
            "",
            cross_project_table(result),
        ]
    md.write_text("\n".join(parts) + "\n")
    js.write_text(json.dumps(result, indent=2) + "\n")
    return written
