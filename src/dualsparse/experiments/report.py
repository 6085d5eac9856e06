"""Reports from the results store: Markdown + HTML with a data-driven headline, tables and plots.

The report is made of the sections of every registered study kind (:mod:`.study`), in
registration order, each present only when its runs are in the store: the grid's headline,
details and overview figure (:mod:`.grid_report`), the learning-dynamics and data-subset
sections (:mod:`.tracking_report`), the continual-learning sections (:mod:`.continual_report`);
then how the numbers were made. This module renders them and writes the files.
"""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path

import pandas as pd

from .store import ResultsStore, StoreError, table_names
from .study import study_kinds

# how every report's numbers were made (the study kinds add their own items)
METHODS = [
        "Each cell is the mean over replicates (seeds, × folds under k-fold CV) with a 95 % Student-t interval; "
        "comparisons are paired over the same replicates (same split, same amputation mask).",
        "Missing values are removed from the training rows (and validation/test rows when apply_to = \"both\"); "
        "representations are fitted on training rows only. A missing rate is the share of all cells missing "
        "afterwards, existing NaN included, for every mechanism (MAR removes more from the non-driver columns to "
        "reach it); the realised rate is that share measured on each run's training rows, and the plots against "
        "the rate use it.",
        "FLOPs follow dualsparse.sparse.flops: 2 per multiply-add actually formed, counted over the whole fit; the dense "
        "equivalent is the same architecture fully connected on dense inputs. Baseline FLOPs are analytic (HGB: none).",
        "Fit-time ratios (sparse / dense) are the geometric mean of the per-replicate ratios of fit_time_s (wall-clock "
        "seconds of the estimator's fit, on whatever machine and with whatever load the run had; runs of a --jobs or "
        "Dask sweep share cores), with a 95 % t-interval of the mean log ratio; \"slower\" / \"faster\" when the "
        "interval lies above / below 1. FLOPs count arithmetic, not time: a sparse kernel can need fewer FLOPs and "
        "still take longer.",

]


# ---------------------------------------------------------------------- rendering
def _html_inline(text: str) -> str:
    text = html.escape(text)
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)


def render_markdown(blocks) -> str:
    out = []
    for b in blocks:
        kind = b[0]
        if kind == "h":
            out.append(f"{'#' * b[1]} {b[2]}\n")
        elif kind == "p":
            out.append(f"{b[1]}\n")
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in b[1]) + "\n")
        elif kind == "table":
            headers, rows = b[1], b[2]
            esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
            out.append("| " + " | ".join(esc(h) for h in headers) + " |")
            out.append("|" + "|".join("---" for _ in headers) + "|")
            out.extend("| " + " | ".join(esc(c) for c in row) + " |" for row in rows)
            out.append("")
        elif kind == "img":
            out.append(f"![{b[2]}]({b[1]})\n")
    return "\n".join(out)


def render_html(blocks, title: str) -> str:
    body = []
    for b in blocks:
        kind = b[0]
        if kind == "h":
            body.append(f"<h{b[1]}>{_html_inline(b[2])}</h{b[1]}>")
        elif kind == "p":
            body.append(f"<p>{_html_inline(b[1])}</p>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_html_inline(i)}</li>" for i in b[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{_html_inline(h)}</th>" for h in b[1])
            rows = "".join("<tr>" + "".join(f"<td>{_html_inline(str(c))}</td>" for c in row) + "</tr>" for row in b[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "img":
            body.append(f'<figure><img src="{html.escape(b[1])}" alt="{html.escape(b[2])}"><figcaption>{html.escape(b[2])}</figcaption></figure>')
    style = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;line-height:1.45}"
             "table{border-collapse:collapse;margin:1em 0;font-size:0.85em}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}"
             "th{background:#f3f3f3}img{max-width:100%}figure{margin:1em 0}figcaption{font-size:0.8em;color:#555}")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


# ---------------------------------------------------------------------- entry point
def write_report(store, out_dir, experiment: str | None = None, plots: bool = True) -> dict:
    """Write ``report.md``, ``report.html``, ``summary.csv`` and ``figures/*.png`` into ``out_dir``.

    Returns the paths written. Raises StoreError when the store has no finished runs.
    """
    if not isinstance(store, ResultsStore):
        store = ResultsStore(store, create=False)
    frame = store.dataframe(experiment, expand=False)
    if frame.empty:
        known = store.experiments()
        what = f" for experiment {experiment!r} (experiments in the store: {', '.join(known) or 'none'})" if experiment else ""
        raise StoreError(f"no finished runs in {str(store.path)!r}{what}; run a sweep first (dualsparse run CONFIG.toml)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = "dualsparse experiment report" + (f": {experiment}" if experiment else "")
    head_blocks, detail_blocks, summaries, tables_rows = [("h", 1, title)], [], [], {}
    items = [f"{len(frame)} finished runs from {str(store.path)!r}; experiments: {', '.join(sorted(frame['experiment'].unique()))}.",
             *METHODS]
    for kind in study_kinds():
        part = kind.report(store, frame, out_dir, plots, experiment) or {}
        head_blocks.extend(part.get("head", []))
        detail_blocks.extend(part.get("detail", []))
        summaries.extend(part.get("summary", []))
        tables_rows.update(part.get("tables", {}))
        items.extend(part.get("methods", []))

    # methods / provenance
    failures = store.failures(experiment)
    if failures:
        items.append(f"**{len(failures)} run(s) failed** and are not in these tables; rerun the sweep to retry them "
                     f"(first error: {failures[0]['error']}).")
    versions = sorted({v for v in frame["versions"].dropna()})
    for v in versions[:3]:
        items.append("library versions: " + ", ".join(f"{k} {val}" for k, val in json.loads(v).items()))
    blocks = head_blocks + detail_blocks + [("h", 2, "How these numbers were made"), ("ul", items)]

    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    md_path.write_text(render_markdown(blocks), encoding="utf-8")
    html_path.write_text(render_html(blocks, title), encoding="utf-8")
    summary_path = out_dir / "summary.csv"
    (pd.concat(summaries, ignore_index=True) if summaries else pd.DataFrame()).to_csv(summary_path, index=False)
    tables = {}
    for name, rows in tables_rows.items():
        tables[name] = str(out_dir / f"{name}.csv")
        (rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)).to_csv(tables[name], index=False)
    figures = sorted(str(p) for p in (out_dir / "figures").glob("*.png")) if plots else []
    return {"markdown": str(md_path), "html": str(html_path), "summary": str(summary_path), "figures": figures,
            "tables": tables}


def export_results(store, fmt: str, out=None, experiment: str | None = None, table: str = "runs"):
    """Write every finished run (or the rows of a study table) as CSV or Parquet (``out`` None: CSV to stdout).

    ``table``: ``runs`` (default), or ``examples`` (per-example statistics of tracked runs, one row
    per (run, dataset row)), ``epochs``, ``subsets`` or ``continual``; the study tables carry
    their run's identity columns (experiment, kind, dataset, ..., model, sparsity, epsilon, seed).
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"unknown format {fmt!r}; choose csv or parquet")
    tables = table_names()
    if table not in tables:
        raise ValueError(f"unknown table {table!r}; choose one of {', '.join(tables)}")
    if not isinstance(store, ResultsStore):
        store = ResultsStore(store, create=False)
    frame = store.dataframe(experiment, expand=True) if table == "runs" else store.table(table, experiment)
    if fmt == "parquet":
        if out is None:
            raise ValueError("parquet is binary: give --out FILE (e.g. --out results.parquet)")
        frame.to_parquet(out, index=False)
    elif out is None:
        frame.to_csv(sys.stdout, index=False)
    else:
        frame.to_csv(out, index=False)
    return len(frame)
