"""The Pareto front as files a person looks at: CSV, a PNG scatter, and a self-contained HTML.

The HTML needs no library and no network: the points are inlined as JSON and drawn as SVG;
hovering a point shows that trial's settings and results.
"""
from __future__ import annotations

import csv
import html
import json
from pathlib import Path

# What an axis means, for the metrics whose name alone does not say it.
METRIC_LABELS = {
    "update_rate": "open switches / all",
    "inference_ms": "ms per sequence, sparse engine, batch 1",
    "inference_speedup": "dense time / sparse time",
}


def write_front_files(rows: list[dict], objectives: list[tuple[str, str, float]], folder: Path) -> list[Path]:
    """Write pareto_front.csv/.png/.html for `rows` into folder.

    One row per trial with results: its objectives, settings, `status` (completed, stopped,
    failed, killed) and `pareto_rank` (None unless it completed the full budget, the only
    trials that can be on the front). Stopped trials are drawn at their last, low-fidelity
    values, hollow, to show where early stopping cut the search. With more than two objectives
    (say val_accuracy, update_rate and inference_ms) each one after the first gets its own panel
    against the first, every axis labelled by its objective; the front is the front over all.
    """
    folder.mkdir(parents=True, exist_ok=True)
    return [_csv(rows, folder / "pareto_front.csv"), _png(rows, objectives, folder / "pareto_front.png"),
            _html(rows, objectives, folder / "pareto_front.html")]


def _csv(rows: list[dict], path: Path) -> Path:
    fields = list(dict.fromkeys(k for r in rows for k in r)) or ["trial_id"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: (r["pareto_rank"] is None, r["pareto_rank"] or 0, str(r["trial_id"]))))
    return path


def _front_line(rows: list[dict], x: str, y: str) -> list[dict]:
    return sorted((r for r in rows if r["pareto_optimal"]), key=lambda r: r[x])


def _png(rows: list[dict], objectives, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _panels(objectives)
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 4.8), dpi=120, squeeze=False)
    for ax, ((x, gx, _), (y, gy, _)) in zip(axes[0], panels):
        others = [r for r in rows if not r["pareto_optimal"] and r["pareto_rank"] is not None]
        partial = [r for r in rows if r["pareto_rank"] is None]
        front = _front_line(rows, x, y)
        ax.scatter([r[x] for r in partial], [r[y] for r in partial], facecolors="none", edgecolors="0.7", s=22,
                   label="stopped early (last values)")
        ax.scatter([r[x] for r in others], [r[y] for r in others], c="0.45", s=22, label="full budget")
        ax.plot([r[x] for r in front], [r[y] for r in front], "-o", c="tab:red", ms=6, label="Pareto front",
                drawstyle="steps-post" if front and len(panels) == 1 else "default")
        ax.set_xlabel(axis_label(x, gx, "\n"))
        ax.set_ylabel(axis_label(y, gy, "\n"))
        full = sum(r["pareto_rank"] is not None for r in rows)
        ax.set_title(f"{y} vs {x}: {len(front)} Pareto-optimal of {full} full-budget ({len(rows)} trials)",
                     fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def axis_label(metric: str, goal: str, sep: str = ": ") -> str:
    """``metric (goal)``, then what the metric means when its name alone does not say it."""
    return f"{metric} ({goal}){sep}{METRIC_LABELS[metric]}" if metric in METRIC_LABELS else f"{metric} ({goal})"


def _panels(objectives) -> list[tuple]:
    """(x objective, y objective) of each panel: every objective after the first against the first."""
    if len(objectives) >= 2:
        return [(objectives[0], o) for o in objectives[1:]]
    return [(("trial", "index", 0.0), objectives[0])]


_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Pareto front: {title}</title>
<style>body{{font:14px sans-serif;margin:24px}} #tip{{position:absolute;background:#fff;border:1px solid #999;
padding:6px;font:12px monospace;white-space:pre;display:none;pointer-events:none}} circle{{cursor:pointer}}</style>
</head><body><h2>{title}</h2><p>{subtitle}</p><div id="panels"></div><div id="tip"></div>
<script>
const rows = {rows}; const panels = {panels};
const tip = document.getElementById('tip');
const W = 760, H = 520, L = 70, B = 50, T = 20, R = 20, NS = 'http://www.w3.org/2000/svg';
function draw([X, Y, xlabel, ylabel]) {{
const svg = document.createElementNS(NS, 'svg');
svg.setAttribute('viewBox', `0 0 ${{W}} ${{H}}`); svg.setAttribute('style', 'width:100%;max-width:760px;height:auto');
document.getElementById('panels').appendChild(svg);
const xs = rows.map(r => r[X]), ys = rows.map(r => r[Y]);
const pad = (lo, hi) => hi > lo ? [lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)] : [lo - 1, hi + 1];
const [x0, x1] = pad(Math.min(...xs), Math.max(...xs)), [y0, y1] = pad(Math.min(...ys), Math.max(...ys));
const sx = v => L + (v - x0) / (x1 - x0) * (W - L - R), sy = v => H - B - (v - y0) / (y1 - y0) * (H - B - T);
function el(tag, attrs) {{ const e = document.createElementNS(NS, tag); for (const k in attrs) e.setAttribute(k, attrs[k]); svg.appendChild(e); return e; }}
el('line', {{x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: '#333'}}); el('line', {{x1: L, y1: T, x2: L, y2: H - B, stroke: '#333'}});
for (let i = 0; i <= 4; i++) {{
  const vx = x0 + i * (x1 - x0) / 4, vy = y0 + i * (y1 - y0) / 4;
  el('text', {{x: sx(vx), y: H - B + 18, 'text-anchor': 'middle', 'font-size': 11}}).textContent = vx.toPrecision(3);
  el('text', {{x: L - 6, y: sy(vy) + 4, 'text-anchor': 'end', 'font-size': 11}}).textContent = vy.toPrecision(3);
}}
el('text', {{x: (W + L) / 2, y: H - 10, 'text-anchor': 'middle'}}).textContent = xlabel;
el('text', {{x: 16, y: (H - B) / 2, 'text-anchor': 'middle', transform: `rotate(-90 16 ${{(H - B) / 2}})`}}).textContent = ylabel;
const front = rows.filter(r => r.pareto_optimal).sort((a, b) => a[X] - b[X]);
if (front.length) el('polyline', {{points: front.map(r => sx(r[X]) + ',' + sy(r[Y])).join(' '), fill: 'none', stroke: '#d62728', 'stroke-width': 2}});
for (const r of rows) {{
  const full = r.pareto_rank !== null;
  const c = el('circle', {{cx: sx(r[X]), cy: sy(r[Y]), r: r.pareto_optimal ? 6 : 4, opacity: 0.85,
    fill: r.pareto_optimal ? '#d62728' : (full ? '#777' : 'none'), stroke: full ? 'none' : '#aaa'}});
  c.addEventListener('mousemove', e => {{ tip.style.display = 'block'; tip.style.left = (e.pageX + 12) + 'px'; tip.style.top = (e.pageY + 12) + 'px';
    tip.textContent = Object.entries(r).map(([k, v]) => k + ': ' + (typeof v === 'number' ? +v.toPrecision(5) : v)).join('\\n'); }});
  c.addEventListener('mouseleave', () => tip.style.display = 'none');
}}
}}
panels.forEach(draw);
</script></body></html>
"""


def _html(rows: list[dict], objectives, path: Path) -> Path:
    panels = _panels(objectives)
    if panels[0][0][0] == "trial":
        rows = [{**r, "trial": i} for i, r in enumerate(rows)]
    n_front = sum(1 for r in rows if r["pareto_optimal"])
    first = panels[0][0][0]
    title = f"{', '.join(y for _, (y, _, _) in panels)} vs {first}"
    path.write_text(_HTML.format(
        title=html.escape(title), subtitle=html.escape(
            f"{n_front} Pareto-optimal (red, joined) of {sum(r['pareto_rank'] is not None for r in rows)} "
            f"full-budget trials (grey); hollow: stopped early, at their last values. Hover a point for its settings."),
        rows=json.dumps(rows, default=str),
        panels=json.dumps([[x, y, axis_label(x, gx), axis_label(y, gy)] for (x, gx, _), (y, gy, _) in panels])))
    return path
