"""The page's charts: 8 inches at 150 dpi, shown at the column's width, linked full size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.cases import BY_NAME, label, size_label

WIDTH = 8.0
DPI = 150
OURS, DJANGO, OURS_LIGHT, DJANGO_LIGHT = "#1f6fb2", "#8c8c8c", "#8cbce6", "#cfcfcf"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 13, "axes.titlesize": 14, "axes.titleweight": "bold",
                         "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _save(fig: Any, path: Path, top: float = 1.0) -> str:
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.savefig(path, dpi=DPI)
    fig.clf()
    return path.name


def _barh(ax: Any, labels: list[str], series: list[tuple[str, list[float | None], list[str]]],
          fmt: str) -> None:
    """Grouped horizontal bars, one group per label, each bar with its value written on it."""
    height = 0.8 / len(series)
    top = max((v for _, values, _ in series for v in values if v), default=1.0)
    for i, (name, values, colors) in enumerate(series):
        ys = [y + (i - (len(series) - 1) / 2) * height for y in range(len(labels))]
        ax.barh(ys, [v or 0 for v in values], height=height * 0.92, color=colors, label=name)
        for y, v in zip(ys, values, strict=True):
            ax.text((v or 0) + top * 0.01, y, fmt.format(v) if v else "n/a", va="center",
                    fontsize=11)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.18)
    ax.tick_params(axis="x", labelbottom=True)
    ax.grid(axis="x", alpha=0.3)


def targets(verdicts: list[dict[str, Any]], path: Path) -> str:
    plt = _plt()
    rows = [v for v in verdicts if not v["target"].endtoend]
    fig, ax = plt.subplots(figsize=(WIDTH, 0.62 * len(rows) + 1.6))
    labels = [v["target"].short for v in rows]
    _barh(ax, labels, [
        ("SessionStore", [v["engine"] for v in rows], [OURS] * len(rows)),
        ("through the middleware", [v["request"] for v in rows], [OURS_LIGHT] * len(rows)),
    ], "{:.2f}")
    for y, v in enumerate(rows):
        ax.plot([v["target"].limit] * 2, [y - 0.45, y + 0.45], color="#c0392b", linewidth=2.5,
                label="limit" if y == 0 else None)
    ax.set_xlabel("ours / Django's (time; lower is better)")
    ax.set_title("In-process targets")
    ax.legend(loc="lower right", fontsize=12)
    return _save(fig, path)


def times(results: dict[str, Any], size: int, path: Path) -> str:
    plt = _plt()
    rows = [r for r in results["timing"]["results"] if r["size"] == size]
    names = list(dict.fromkeys(r["case"] for r in rows))
    fig, axes = plt.subplots(2, 1, figsize=(WIDTH, 0.6 * len(names) * 2 + 2.4))
    for ax, cycle in zip(axes, ("load", "modify"), strict=True):
        def value(level: str, name: str, cycle: str = cycle) -> float | None:
            found = [r["median_us"] for r in rows
                     if (r["level"], r["case"], r["cycle"]) == (level, name, cycle)]
            return found[0] if found else None

        _barh(ax, [label(n) for n in names], [
            ("SessionStore", [value("engine", n) for n in names],
             [OURS if BY_NAME[n].ours else DJANGO for n in names]),
            ("through the middleware", [value("request", n) for n in names],
             [OURS_LIGHT if BY_NAME[n].ours else DJANGO_LIGHT for n in names]),
        ], "{:.0f}")
        ax.set_title(f"{size_label(size)}: "
                     f"{'load, read one key' if cycle == 'load' else 'load + modify + save'}")
        ax.set_xlabel("µs per cycle (lower is better)")
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(color=c, label=t) for c, t in (
        (OURS, "ours, SessionStore"), (DJANGO, "Django's, SessionStore"),
        (OURS_LIGHT, "ours, through the middleware"),
        (DJANGO_LIGHT, "Django's, through the middleware"))],
        loc="upper center", ncols=2, fontsize=13, frameon=False)
    return _save(fig, path, top=1 - 0.9 / fig.get_figheight())


def endtoend(results: dict[str, Any], path: Path) -> str:
    plt = _plt()
    rows = list(results["endtoend"]["results"])
    names = list(dict.fromkeys(r["case"] for r in rows))
    fig, axes = plt.subplots(2, 1, figsize=(WIDTH, 0.55 * len(names) * 2 + 2.4))
    for ax, mode in zip(axes, ("read", "write"), strict=True):
        values = [next((r.get("rps") for r in rows if (r["case"], r["mode"]) == (n, mode)), None)
                  for n in names]
        colors = [OURS if BY_NAME[n].ours else DJANGO if BY_NAME[n].engine else "#444444"
                  for n in names]
        _barh(ax, [label(n) for n in names], [("req/s", values, colors)], "{:,.0f}")
        ax.set_title(f"{mode} request, {size_label(rows[0]['size'])} session")
        ax.set_xlabel("requests per second (higher is better)")
    return _save(fig, path)


def draw(results: dict[str, Any], static: Path, verdicts: list[dict[str, Any]]) -> list[str]:
    """Every chart the results allow; the names of the files written."""
    static.mkdir(parents=True, exist_ok=True)
    for old in static.glob("benchmarks-*.png"):
        old.unlink()
    written = []
    if results.get("timing", {}).get("results"):
        written.append(targets(verdicts, static / "benchmarks-targets.png"))
        for size in sorted({r["size"] for r in results["timing"]["results"]}):
            written.append(times(results, size, static / f"benchmarks-time-{size}.png"))
    if results.get("endtoend", {}).get("results"):
        written.append(endtoend(results, static / "benchmarks-endtoend.png"))
    return written
