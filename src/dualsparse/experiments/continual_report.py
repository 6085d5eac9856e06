"""Report sections of the ``[continual]`` study (only when its runs are in the store).

Average accuracy (ACC), backward transfer (BWT) and forgetting per scenario x model x replay
strategy x buffer size; accuracy-matrix heatmaps; BWT and ACC vs buffer size per
model and strategy; and, per model and strategy, the smallest buffer that keeps BWT at or above
``BWT_OK`` (the report's working definition of "overcoming catastrophic forgetting").
"""

from __future__ import annotations

import json

import numpy as np

from ..dynamics import STRATEGIES
from .formatting import fmt_interval, p_text, slug
from .models import model_order
from .report_common import ci_text, cfg_id, cfg_label, mean_of, nan_none
from .stats import mean_ci, paired

BWT_OK = -0.10  # backward transfer at or above this "overcomes catastrophic forgetting" (report's definition)

# ---------------------------------------------------------------------- continual
def continual_sections(store, experiment, out_dir, plots, out):
    """The continual-learning sections: per (experiment, dataset, representation, scenario), ACC / BWT /
    forgetting per model, replay strategy and buffer, the smallest buffer that keeps BWT at or above
    BWT_OK, sparse minus dense BWT, plots; the summary table."""
    cont = store.table("continual", experiment)
    if cont.empty:
        return
    cont["cfg"] = [cfg_id(m, nan_none(s), nan_none(e)) for m, s, e in zip(cont["model"], cont["sparsity"], cont["epsilon"])]
    cont["label"] = [cfg_label(m, nan_none(s), nan_none(e)) for m, s, e in zip(cont["model"], cont["sparsity"], cont["epsilon"])]
    out["head"].append(("h", 2, "Continual learning: how small a replay buffer overcomes catastrophic forgetting?"))
    out["detail"].append(("h", 2, "Details: continual learning"))
    out["head"].append(("p", f"ACC: mean accuracy over all tasks after the last one; BWT (backward transfer): mean change in "
                             f"accuracy on each earlier task from just after learning it to the end (0: nothing forgotten; "
                             f"−1: everything); forgetting: mean drop from each earlier task's best accuracy. Here a buffer "
                             f"*overcomes catastrophic forgetting* when the mean BWT is at least {BWT_OK:+.2f}."))
    rows_csv = []
    for (exp, dataset, rep, scenario), g in cont.groupby(["experiment", "dataset", "representation", "scenario"], sort=True):
        name = f"{dataset}, {scenario} ({exp})"
        cfgs = sorted(g["cfg"].unique(), key=lambda c: (model_order(c.split("|")[0]), c))
        labels = dict(zip(g["cfg"], g["label"]))
        present = set(g["replay"]) - {"none"}
        strategies = [s for s in STRATEGIES if s in present] + sorted(present - set(STRATEGIES))
        buffers = sorted(b for b in g["buffer_size"].unique() if b > 0)
        n_train = int(g["n_train"].median())
        n_tasks = int(g["n_tasks"].iloc[0])
        out["head"].append(("h", 3, name))
        out["head"].append(("p", f"{n_tasks} tasks, {n_train} training rows over all tasks ({n_train // n_tasks} per task); "
                                 f"{g['seed'].nunique()} seeds; buffers of {', '.join(map(str, buffers)) or '–'} rows "
                                 f"({', '.join(f'{100 * b / n_train:.1f}' for b in buffers)} % of the training rows)."))
        table, head = [], []
        head_table = []
        for c in cfgs:
            gc = g[g["cfg"] == c]
            naive = gc[gc["replay"] == "none"]
            for replay in (["none"] if len(naive) else []) + strategies:
                for b in ([0] if replay == "none" else buffers):
                    at = gc[(gc["replay"] == replay) & (gc["buffer_size"] == b)]
                    if at.empty:
                        continue
                    table.append([labels[c], replay, "–" if replay == "none" else f"{b} ({100 * b / n_train:.1f} %)",
                                  str(len(at)), ci_text(at["average_accuracy"].astype(float)),
                                  ci_text(at["backward_transfer"].astype(float)), ci_text(at["forgetting"].astype(float))])
                    rows_csv.append({"experiment": exp, "dataset": dataset, "scenario": scenario, "config": labels[c],
                                     "replay": replay, "buffer_size": b, "buffer_share": b / n_train, "n": len(at),
                                     "average_accuracy": mean_of(at["average_accuracy"].astype(float)),
                                     "backward_transfer": mean_of(at["backward_transfer"].astype(float)),
                                     "forgetting": mean_of(at["forgetting"].astype(float))})
            sentence, row = _smallest_buffers(gc, naive, labels[c], strategies, buffers, n_train)
            head.append(sentence)
            head_table.append(row)
        out["head"].append(("ul", head))
        if strategies:
            out["head"].append(("p", f"Smallest buffer (rows, share of the training rows) whose mean BWT is ≥ {BWT_OK:+.2f}, per "
                                     "replay strategy:"))
            out["head"].append(("table", ["model", "naive BWT", *strategies], head_table))
            bwt_rows = []
            for c in cfgs:
                gc = g[g["cfg"] == c]
                naive = gc[gc["replay"] == "none"]["backward_transfer"].astype(float)
                for s in strategies:
                    cells = []
                    for b in buffers:
                        vals = gc[(gc["replay"] == s) & (gc["buffer_size"] == b)]["backward_transfer"].astype(float)
                        cells.append(f"{mean_of(vals):+.2f}" if len(vals) else "–")
                    bwt_rows.append([labels[c], s, f"{mean_of(naive):+.2f}" if len(naive) else "–", *cells])
            out["head"].append(("p", "Mean BWT by buffer size (rows):"))
            out["head"].append(("table", ["model", "strategy", "naive", *map(str, buffers)], bwt_rows))
        cmp_lines = _bwt_vs_dense(g, cfgs, labels, strategies, buffers)
        out["detail"].append(("h", 3, f"{name}: ACC, BWT and forgetting (mean ± 95 % CI over seeds)"))
        out["detail"].append(("table", ["model", "replay", "buffer rows (share of data)", "n", "ACC", "BWT", "forgetting"], table))
        if cmp_lines:
            out["detail"].append(("p", "Sparse minus dense backward transfer, paired by seed:"))
            out["detail"].append(("ul", cmp_lines))
        if plots:
            stem = slug(exp, dataset, rep, scenario, "continual")
            for path, caption in _continual_plots(g, cfgs, labels, strategies, buffers, n_train, out_dir, stem):
                out["detail"].append(("img", path.relative_to(out_dir).as_posix(), caption))
    out["tables"]["continual_summary"] = rows_csv


def _smallest_buffers(gc, naive, label, strategies, buffers, n_train):
    """One model's headline sentence and table row: naive fine-tuning, then per strategy the smallest
    buffer whose mean BWT is at least BWT_OK."""
    parts = []
    if len(naive):
        parts.append(f"naive fine-tuning ACC {ci_text(naive['average_accuracy'].astype(float))}, "
                     f"BWT {ci_text(naive['backward_transfer'].astype(float))}")
    row = [label, ci_text(naive["backward_transfer"].astype(float)) if len(naive) else "–"]
    naive_ok = len(naive) and mean_of(naive["backward_transfer"].astype(float)) >= BWT_OK
    if naive_ok:
        parts.append(f"naive fine-tuning already keeps BWT ≥ {BWT_OK:+.2f}: no buffer needed")
    for s in strategies:
        if naive_ok:
            row.append("0 (naive)")
            continue
        ok = None
        for b in buffers:
            at = gc[(gc["replay"] == s) & (gc["buffer_size"] == b)]
            if len(at) and mean_of(at["backward_transfer"].astype(float)) >= BWT_OK:
                ok = (b, at)
                break
        if ok is None:
            parts.append(f"{s}: no buffer tried reaches BWT ≥ {BWT_OK:+.2f}"
                         + (f" (at {buffers[-1]} rows BWT {ci_text(gc[(gc['replay'] == s) & (gc['buffer_size'] == buffers[-1])]['backward_transfer'].astype(float))})" if buffers else ""))
            row.append(f"> {buffers[-1]}" if buffers else "–")
        else:
            b, at = ok
            parts.append(f"{s}: **{b} rows ({100 * b / n_train:.1f} % of the data)** give BWT "
                         f"{ci_text(at['backward_transfer'].astype(float))}, ACC {ci_text(at['average_accuracy'].astype(float))}")
            row.append(f"{b} ({100 * b / n_train:.1f} %)")
    return f"{label}: " + "; ".join(parts) + ".", row


def _bwt_vs_dense(g, cfgs, labels, strategies, buffers) -> list[str]:
    """Sparse minus dense backward transfer at each buffer (naive, then the first strategy), paired by seed."""
    dense = [c for c in cfgs if c.startswith("dense|")]
    cmp_lines = []
    if dense and strategies:
        s0 = strategies[0]
        for c in cfgs:
            if c in dense:
                continue
            for b in [0, *buffers]:
                replay = "none" if b == 0 else s0
                a = g[(g["cfg"] == c) & (g["replay"] == replay) & (g["buffer_size"] == b)]
                d = g[(g["cfg"] == dense[0]) & (g["replay"] == replay) & (g["buffer_size"] == b)]
                common = sorted(set(a["seed"]) & set(d["seed"]))
                if len(common) < 2:
                    continue
                av = dict(zip(a["seed"], a["backward_transfer"].astype(float)))
                dv = dict(zip(d["seed"], d["backward_transfer"].astype(float)))
                cmp = paired([av[s] for s in common], [dv[s] for s in common])
                cmp_lines.append(f"{labels[c]} − dense MLP, {'naive' if b == 0 else f'{s0} {b} rows'}: BWT difference "
                                 f"{fmt_interval(cmp.diff, cmp.diff_half_width)} ({p_text(cmp.p_ttest)})")
    return cmp_lines


def _continual_plots(g, cfgs, labels, strategies, buffers, n_train, out_dir, stem):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    files = []
    # BWT and ACC vs buffer size, one panel per model, a line per strategy
    if strategies and buffers:
        fig, axes = plt.subplots(2, len(cfgs), figsize=(4.0 * len(cfgs), 6.4), squeeze=False, sharex=True)
        for col, c in enumerate(cfgs):
            gc = g[g["cfg"] == c]
            naive = gc[gc["replay"] == "none"]
            for row, (metric, name) in enumerate((("backward_transfer", "BWT"), ("average_accuracy", "ACC"))):
                ax = axes[row, col]
                for i, s in enumerate(strategies):
                    ys, es = [], []
                    for b in buffers:
                        m, h, _ = mean_ci(gc[(gc["replay"] == s) & (gc["buffer_size"] == b)][metric].astype(float).tolist())
                        ys.append(m), es.append(0 if not np.isfinite(h) else h)
                    ax.errorbar(buffers, ys, yerr=es, capsize=2, marker="o", ms=3, label=s, color=f"C{i}")
                if len(naive):
                    ax.axhline(float(naive[metric].astype(float).mean()), color="k", ls="--", lw=1, label="naive (no replay)")
                if metric == "backward_transfer":
                    ax.axhline(BWT_OK, color="grey", ls=":", lw=1)
                    ax.set_title(labels[c], fontsize=9)
                ax.set_xscale("log")
                ax.grid(alpha=0.3)
                if col == 0:
                    ax.set_ylabel(name)
                if row == 1:
                    ax.set_xlabel(f"replay buffer (rows; {n_train} training rows in all)")
        axes[0, 0].legend(fontsize=7)
        fig.tight_layout()
        path = fig_dir / f"{stem}_bwt_vs_buffer.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append((path, f"backward transfer (top; dotted: {BWT_OK:+.2f}) and average accuracy (bottom) vs buffer size, "
                            "per model and replay strategy (dashed: naive fine-tuning)"))
    # accuracy-matrix heatmaps: rows = models, columns = naive + the first strategy at each buffer size
    columns = [("none", 0)] + ([(strategies[0], b) for b in buffers] if strategies else [])
    columns = [cb for cb in columns if ((g["replay"] == cb[0]) & (g["buffer_size"] == cb[1])).any()]
    if columns:
        fig, axes = plt.subplots(len(cfgs), len(columns), figsize=(2.3 * len(columns) + 0.8, 2.3 * len(cfgs)), squeeze=False)
        im = None
        for i, c in enumerate(cfgs):
            for j, (replay, b) in enumerate(columns):
                ax = axes[i, j]
                at = g[(g["cfg"] == c) & (g["replay"] == replay) & (g["buffer_size"] == b)]
                if at.empty:
                    ax.axis("off")
                    continue
                M = np.mean([np.asarray(json.loads(m), dtype=float) for m in at["accuracy_matrix"]], axis=0)
                im = ax.imshow(M, vmin=0, vmax=1, cmap="viridis")
                T = M.shape[0]
                if T <= 10:
                    for (r_, c_), v in np.ndenumerate(M):
                        text = f"{v:.2f}"
                        ax.text(c_, r_, "1" if text.startswith("1") else text[1:], ha="center", va="center", fontsize=5,
                                color="w" if v < 0.6 else "k")
                ax.set_xticks(range(T))
                ax.set_yticks(range(T))
                ax.tick_params(labelsize=6)
                if i == 0:
                    ax.set_title("naive" if replay == "none" else f"{replay} {b}", fontsize=8)
                if j == 0:
                    ax.set_ylabel(f"{labels[c]}\nafter task", fontsize=7)
                if i == len(cfgs) - 1:
                    ax.set_xlabel("accuracy on task", fontsize=7)
        if im is not None:
            fig.colorbar(im, ax=axes, shrink=0.6, label="accuracy")
        path = fig_dir / f"{stem}_accuracy_matrix.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        files.append((path, "accuracy matrices (mean over seeds): row i = after training task i, column j = accuracy on task j"))
    return files

