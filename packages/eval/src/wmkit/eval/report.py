"""Evaluation reports: a directory a person opens in a browser.

``write_report(evaluation, out_dir)`` writes

- ``report.md``: the metric table, controllability, reward and termination scores (when
  measured), notes, links to the files below;
- ``report.html``: the same, **self-contained** (plots and videos embedded as data URIs, no
  scripts, no network), so it can be mailed or attached to an issue;
- ``metrics.json``: every number (:meth:`RolloutEvaluation.to_dict`) plus ``info``;
- ``psnr_vs_horizon.png`` and ``controllability.png`` (matplotlib, no display needed);
- ``videos/sample_<k>.mp4`` and ``.gif``: side by side, ground truth | world model |
  copy last frame | tokenizer reconstruction | world model under other actions, upscaled
  (nearest) so small frames are visible.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from wmkit.core.video import frame_grid
from wmkit.core.video_io import write_gif, write_video
from wmkit.eval.heads import describe_heads
from wmkit.eval.rollout import HIGHER_IS_BETTER, METHOD_LABELS, METRIC_LABELS, RolloutEvaluation

__all__ = ["write_report"]


def _upscale(frames: np.ndarray, min_height: int) -> np.ndarray:
    k = max(1, -(-min_height // frames.shape[1]))
    return frames.repeat(k, axis=1).repeat(k, axis=2) if k > 1 else frames


def _plot_psnr(ev: RolloutEvaluation, path: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.6), dpi=100)
    ax = fig.add_subplot()
    steps = np.arange(1, ev.horizon + 1)
    for method, metrics in ev.per_step.items():
        ax.plot(steps, metrics["psnr"], marker="o", label=METHOD_LABELS.get(method, method))
    other = np.asarray(ev.controllability["delta_psnr_per_step"])
    ax.plot(
        steps, np.asarray(ev.per_step["model"]["psnr"]) - other, linestyle="--", marker="x",
        label="world model, other actions",
    )  # fmt: skip
    ax.set_xlabel("horizon step")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"PSNR vs horizon (context {ev.context}, {ev.num_clips} clips)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path


def _plot_controllability(ev: RolloutEvaluation, path: Path) -> Path:
    from matplotlib.figure import Figure

    c = ev.controllability
    has_idm = "idm_accuracy" in c
    fig = Figure(figsize=(9 if has_idm else 6, 3.6), dpi=100)
    ax = fig.add_subplot(1, 2 if has_idm else 1, 1)
    steps = np.arange(1, ev.horizon + 1)
    ax.bar(steps, c["delta_psnr_per_step"], color="tab:green")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("horizon step")
    ax.set_ylabel("ΔPSNR (dB)")
    ax.set_title(f"ΔPSNR, true vs {c['action_mode']} actions (mean {c['delta_psnr']:.2f})")
    if has_idm:
        ax2 = fig.add_subplot(1, 2, 2)
        names = list(c["idm_accuracy"])
        ax2.bar(names, [c["idm_accuracy"][n] for n in names], color="tab:blue")
        ax2.set_ylim(0, 1)
        ax2.set_ylabel("IDM action accuracy")
        ax2.set_title("inverse-dynamics accuracy")
    fig.tight_layout()
    fig.savefig(path)
    return path


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _controllability_lines(ev: RolloutEvaluation) -> list[str]:
    c = ev.controllability
    lines = [
        f"ΔPSNR (true vs {c['action_mode']} actions): **{c['delta_psnr']:.3f} dB** "
        f"(PSNR {c['psnr_true']:.2f} with the true actions, {c['psnr_other']:.2f} with others)"
    ]
    if "idm_accuracy" in c:
        accs = ", ".join(f"{k}: {v:.3f}" for k, v in c["idm_accuracy"].items())
        lines.append(f"IDM action accuracy: {accs}")
    return lines


def write_report(
    evaluation: RolloutEvaluation,
    out_dir: str | os.PathLike,
    *,
    title: str = "wmkit rollout evaluation",
    fps: float = 4.0,
    min_video_height: int = 128,
    info: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write the report files into ``out_dir``; returns ``name → path``.

    ``info`` (model and data paths, versions, hardware) is shown in the report and stored in
    ``metrics.json``.
    """
    ev = evaluation
    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    metrics = {**ev.to_dict(), "info": info or {}}
    files["metrics.json"] = out / "metrics.json"
    files["metrics.json"].write_text(json.dumps(metrics, indent=2, default=str))
    files["psnr_vs_horizon.png"] = _plot_psnr(ev, out / "psnr_vs_horizon.png")
    files["controllability.png"] = _plot_controllability(ev, out / "controllability.png")

    columns = list(ev.videos)
    videos: list[tuple[Path, Path]] = []
    n = min(v.shape[0] for v in ev.videos.values()) if ev.videos else 0
    for k in range(n):
        grid = frame_grid([ev.videos[c] for c in columns], batch_index=k).numpy()
        grid = _upscale(grid, min_video_height)
        mp4 = write_video(out / "videos" / f"sample_{k}.mp4", grid, fps=fps)
        gif = write_gif(out / "videos" / f"sample_{k}.gif", grid, fps=fps)
        files[f"videos/sample_{k}.mp4"], files[f"videos/sample_{k}.gif"] = mp4, gif
        videos.append((mp4, gif))

    setting = (
        f"{ev.num_clips} clips, context {ev.context} frames, horizon {ev.horizon} frames, "
        f"{ev.num_samples} sample(s) per context"
    )
    legend = "Columns: " + " | ".join(columns) + f" (first {ev.context} frames are the context)."
    arrows = ", ".join(
        f"{METRIC_LABELS.get(m, m.upper())} {'↑' if up else '↓'}"
        for m, up in HIGHER_IS_BETTER.items()
    )
    definition = (
        "PSNR is the PSNR of the mean MSE over all predicted frames (torchmetrics' reduction); "
        "PSNR/frame is the mean of per-frame PSNRs capped at 100 dB (exact copies hit the cap)."
    )
    verdict = ev.verdict() if "copy_last_frame" in ev.overall else None
    md = [f"# {title}", "", setting, "", ev.markdown_table(), "", f"Better: {arrows}.", ""]
    if verdict:
        md += [f"**{verdict}.**", ""]
    md += [definition, ""]
    md += ["## Controllability", "", *[f"- {line}" for line in _controllability_lines(ev)], ""]
    if ev.heads:
        md += ["## Rewards and terminations", "", *[f"- {x}" for x in describe_heads(ev.heads)], ""]
    md += ["## Plots", "", "![PSNR vs horizon](psnr_vs_horizon.png)", "",
           "![controllability](controllability.png)", ""]  # fmt: skip
    md += ["## Videos", "", legend, ""]
    md += [f"- [sample {k} (mp4)](videos/{m.name}) · ![sample {k}](videos/{g.name})"
           for k, (m, g) in enumerate(videos)]  # fmt: skip
    if ev.notes:
        md += ["", "## Notes", "", *[f"- {x}" for x in ev.notes]]
    if info:
        md += ["", "## Setting", "", *[f"- {k}: `{v}`" for k, v in info.items()]]
    files["report.md"] = out / "report.md"
    files["report.md"].write_text("\n".join(md) + "\n", encoding="utf-8")

    files["report.html"] = out / "report.html"
    files["report.html"].write_text(_html(ev, out, title, setting, legend, videos, info), "utf-8")
    return files


def _html(
    ev: RolloutEvaluation,
    out: Path,
    title: str,
    setting: str,
    legend: str,
    videos: list[tuple[Path, Path]],
    info: dict[str, Any] | None,
) -> str:
    e = html.escape
    verdict = ev.verdict() if "copy_last_frame" in ev.overall else None
    metrics = [
        m
        for m in ("psnr", "psnr_frame_mean", "ssim", "lpips", "fvd")
        if any(m in v for v in ev.overall.values())
    ]
    head = "".join(
        f"<th>{METRIC_LABELS.get(m, m.upper())} {'↑' if HIGHER_IS_BETTER[m] else '↓'}</th>"
        for m in metrics
    )
    rows = []
    for method, values in ev.overall.items():
        cells = "".join(
            "<td>–</td>"
            if values.get(m) is None
            else f"<td>{format(values[m], '.4g' if m == 'fvd' else '.4f')}</td>"
            for m in metrics
        )
        rows.append(f"<tr><th scope='row'>{e(METHOD_LABELS.get(method, method))}</th>{cells}</tr>")
    plots = "".join(
        f"<img src='{_data_uri(path, 'image/png')}' alt='{alt}'>"
        for path, alt in ((out / "psnr_vs_horizon.png", "PSNR vs horizon"),
                          (out / "controllability.png", "controllability"))
    )  # fmt: skip
    vids = "".join(
        f"<figure><video controls loop muted autoplay playsinline "
        f"src='{_data_uri(m, 'video/mp4')}'></video>"
        f"<img src='{_data_uri(g, 'image/gif')}' alt='sample {k} (GIF)'>"
        f"<figcaption>sample {k}</figcaption></figure>"
        for k, (m, g) in enumerate(videos)
    )
    ctrl = "".join(f"<li>{e(x).replace('**', '')}</li>" for x in _controllability_lines(ev))
    notes = "".join(f"<li>{e(x)}</li>" for x in ev.notes)
    heads = ""
    if ev.heads:
        items = "".join(f"<li>{e(x).replace('**', '')}</li>" for x in describe_heads(ev.heads))
        heads = f"<h2>Rewards and terminations</h2><ul>{items}</ul>"
    setting_rows = "".join(
        f"<tr><th>{e(str(k))}</th><td><code>{e(str(v))}</code></td></tr>"
        for k, v in (info or {}).items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }}
th[scope=row] {{ text-align: left; }}
img, video {{ max-width: 100%; image-rendering: pixelated; margin: 0.3em; }}
figure {{ display: inline-block; margin: 0.5em; }}
</style></head>
<body>
<h1>{e(title)}</h1>
<p>{e(setting)}</p>
<table id="metrics"><thead><tr><th>method</th>{head}</tr></thead>
<tbody>{"".join(rows)}</tbody></table>
{f'<p id="verdict"><strong>{e(verdict)}.</strong></p>' if verdict else ""}
<h2>Controllability</h2><ul>{ctrl}</ul>{heads}
<h2>Plots</h2><div id="plots">{plots}</div>
<h2>Videos</h2><p>{e(legend)}</p><div id="videos">{vids}</div>
{f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""}
{f"<h2>Setting</h2><table>{setting_rows}</table>" if setting_rows else ""}
</body></html>
"""
