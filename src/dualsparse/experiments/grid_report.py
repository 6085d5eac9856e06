"""The grid study's report sections: a data-driven headline, tables and plots per (experiment,
dataset, mechanism), and an overview figure of every sparse-vs-dense comparison.

What it says, and how it decides it:

* Runs are grouped by (experiment, dataset, mechanism). Rate-0 runs (stored with mechanism
  ``"none"``) belong to every mechanism of their experiment and dataset.
* A *configuration* is (model, representation, sparsity or epsilon). Each is summarised per
  missing rate by the mean over replicates (seeds, times folds under k-fold) with a 95 %
  t-interval.
* Headline, per rate: the best sparse configuration (every sparse dualsparse MLP model) and the
  best dense MLP are chosen by mean *validation* score (accuracy; R^2 for regression) when every
  run has a validation split, otherwise by the test score (the report says which). Their test
  scores are compared paired over replicates: the mean difference with its 95 % t-interval, a
  paired t-test (significant at p < 0.05) and a Wilcoxon signed-rank test. Training FLOPs are
  compared the same way. When sparse is worse the headline says "sparse loses", in words.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .formatting import fmt_ci, fmt_flops, fmt_interval, fmt_p, fmt_ratio, fmt_seconds, p_text, slug
from .models import display_name, list_models, model_info
from .record import task_metrics
from .stats import mean_ci, paired, ratio_ci

# ---------------------------------------------------------------------- data preparation
def _is_sparse_model(name: str) -> bool:
    try:
        info = model_info(name)
    except ValueError:
        return False
    return info.family == "mlp" and info.sparse


def _is_baseline(name: str) -> bool:
    try:
        return model_info(name).family == "baseline"
    except ValueError:
        return False


def _label(model, representation, sparsity, epsilon) -> str:
    level = ""
    if sparsity is not None and not _isnan(sparsity):
        level = f", sparsity {sparsity:g}"
    elif epsilon is not None and not _isnan(epsilon):
        level = f", ε {epsilon:g}"
    return f"{display_name(model)} ({representation}{level})"


def _isnan(v) -> bool:
    try:
        return v is None or math.isnan(v)
    except TypeError:
        return False


def prepare(frame):
    """Add config labels and replicate ids; copy rate-0 rows into every mechanism's group."""
    df = frame.copy()
    df["fold"] = df["fold"].astype("Int64")
    df["replicate"] = [f"{s}" if pd.isna(f) else f"{s}/{f}" for s, f in zip(df["seed"], df["fold"])]
    df["label"] = [_label(m, r, s, e) for m, r, s, e in zip(df["model"], df["representation"], df["sparsity"], df["epsilon"])]
    df["config_id"] = [f"{m}|{r}|{'' if _isnan(s) else s}|{'' if _isnan(e) else e}"
                       for m, r, s, e in zip(df["model"], df["representation"], df["sparsity"], df["epsilon"])]
    parts = []
    for (exp, ds), g in df.groupby(["experiment", "dataset"], sort=True):
        mechs = sorted(set(g["mechanism"]) - {"none"})
        base = g[g["mechanism"] == "none"]
        rest = g[g["mechanism"] != "none"]
        if not mechs:
            parts.append(base)
            continue
        parts.append(rest)
        for m in mechs:
            copy = base.copy()
            copy["mechanism"] = m
            parts.append(copy)
    return pd.concat(parts, ignore_index=True) if parts else df


def summarise(df, metrics) -> "object":
    """One row per (experiment, dataset, mechanism, config, rate): mean, CI half-width and n."""
    cols = [m for m, _, _ in metrics] + [f"val_{m}" for m, _, _ in metrics] + [
        "flops_train", "flops_train_dense", "flops_inference", "flops_inference_dense", "density",
        "fit_time_s", "wall_time_s", "peak_memory_mb", "realised_rate"]
    records = []
    keys = ["experiment", "dataset", "mechanism", "config_id", "label", "model", "representation", "rate"]
    for key, g in df.groupby(keys, sort=True, dropna=False):
        rec = dict(zip(keys, key))
        rec["sparsity"] = g["sparsity"].iloc[0]
        rec["epsilon"] = g["epsilon"].iloc[0]
        rec["n"] = len(g)
        for c in cols:
            if c in g:
                vals = pd.to_numeric(g[c], errors="coerce").to_numpy(dtype=float)
                mean, half, n = mean_ci(vals)
                rec[f"{c}_mean"], rec[f"{c}_ci"], rec[f"{c}_n"] = mean, half, n
        records.append(rec)
    return pd.DataFrame(records)


# ---------------------------------------------------------------------- headline
def _choose(summary_rows, primary, higher, use_val):
    """Best configuration per rate among ``summary_rows`` (a DataFrame for one rate)."""
    if summary_rows.empty:
        return None
    col = f"val_{primary}_mean" if use_val else f"{primary}_mean"
    rows = summary_rows[np.isfinite(summary_rows[col].to_numpy(dtype=float))]
    if rows.empty:
        return None
    score = rows[col].to_numpy(dtype=float) * (1 if higher else -1)
    flops = rows["flops_train_mean"].to_numpy(dtype=float)
    flops = np.where(np.isfinite(flops), flops, np.inf)
    order = np.lexsort((flops, -score))  # best score, then fewer training FLOPs
    return rows.iloc[order[0]]


def _aligned(df, config_id, rate, column):
    g = df[(df["config_id"] == config_id) & (df["rate"] == rate)]
    return dict(zip(g["replicate"], g[column].astype(float)))


def _pair(df, id_a, id_b, rate, column):
    a, b = _aligned(df, id_a, rate, column), _aligned(df, id_b, rate, column)
    common = sorted(set(a) & set(b))
    return paired([a[k] for k in common], [b[k] for k in common])


def _pair_ratio(df, id_a, id_b, rate, column):
    """Paired ratio a / b over the replicates both configurations have (geometric mean, CI on the log scale)."""
    if column not in df:
        return ratio_ci([], [])
    a, b = _aligned(df, id_a, rate, column), _aligned(df, id_b, rate, column)
    common = sorted(set(a) & set(b))
    return ratio_ci([a[k] for k in common], [b[k] for k in common])


def _compare(df, sparse, dense, rate, primary) -> dict:
    """One sparse-vs-dense comparison at one rate (two summary rows), paired over replicates.

    ``score``: the primary metric's difference (a PairedComparison); ``flops``: the same for
    training FLOPs; ``flop_ratio``: mean training FLOPs sparse / dense; ``time``: fit time
    sparse / dense, the geometric mean of the per-replicate ratios with its 95 % interval.
    """
    sid, did = sparse["config_id"], dense["config_id"]
    d_flops = dense["flops_train_mean"]
    return {
        "score": _pair(df, sid, did, rate, primary),
        "flops": _pair(df, sid, did, rate, "flops_train"),
        "flop_ratio": sparse["flops_train_mean"] / d_flops if np.isfinite(d_flops) and d_flops else math.nan,
        "time": _pair_ratio(df, sid, did, rate, "fit_time_s"),
    }


# fit-time ratio sparse / dense: the interval above 1, below 1, or containing 1
TIME_WORDS = {"higher": "slower", "lower": "faster", "unclear": "no clear difference", "none": ""}


def _time_text(rc, flop_ratio, sparse_s, dense_s) -> str:
    """The headline's fit-time clause: both means, the paired ratio with its interval, and the word."""
    if not rc.finite:
        return "Fit time not available"
    text = f"Fit time {fmt_seconds(sparse_s)} vs {fmt_seconds(dense_s)}: {rc.ratio:.3g}× dense"
    if np.isfinite(rc.low):
        text += f" [95 % CI {rc.low:.3g}, {rc.high:.3g}; geometric mean of {rc.n} per-replicate ratios]"
    if rc.direction == "higher":
        text += ", sparse slower"
        if np.isfinite(flop_ratio) and 0 < flop_ratio < 1:
            text += f" despite {1 / flop_ratio:.3g}× fewer FLOPs"
    elif rc.direction == "lower":
        text += ", sparse faster"
    else:
        text += ", no clear difference in fit time"
    return text


def _outcome(cmp, higher_is_better=True) -> tuple[str, str]:
    """(outcome, lead) of a sparse-minus-dense comparison; outcome in win / lose / ns / tie / none."""
    if cmp.n == 0:
        return "none", "No paired runs"
    if cmp.note.startswith("identical"):
        return "tie", "Tie: identical on every seed"
    better = cmp.diff > 0 if higher_is_better else cmp.diff < 0
    if cmp.note.startswith("constant"):
        return ("win", "Sparse wins on every seed") if better else ("lose", "**Sparse loses** on every seed")
    if cmp.note:  # a single paired run
        return "ns", f"No test possible ({cmp.note}; sparse {'higher' if better else 'lower'})"
    if cmp.significant:
        return ("win", "Sparse wins (significant)") if better else ("lose", "**Sparse loses** (significant)")
    return "ns", f"No significant difference (sparse {'higher' if better else 'lower'})"


def headline(df, summary, task, use_val):
    """Headline blocks for one (experiment, dataset, mechanism) group."""
    metrics = task_metrics(task)
    primary, primary_name, higher = metrics[0]
    blocks, table, sentences = [], [], []
    outcomes = {"win": [], "lose": [], "ns": [], "tie": []}
    times = {"higher": [], "lower": [], "unclear": []}
    time_ratios, flop_ratios, fewer_but_slower = [], [], []
    for rate in sorted(summary["rate"].unique()):
        rows = summary[summary["rate"] == rate]
        sparse = _choose(rows[[_is_sparse_model(m) for m in rows["model"]]], primary, higher, use_val)
        dense = _choose(rows[rows["model"] == "dense"], primary, higher, use_val)
        baseline = _choose(rows[[_is_baseline(m) for m in rows["model"]]], primary, higher, use_val)
        if sparse is None or dense is None:
            missing = "sparse" if sparse is None else "dense"
            sentences.append(f"rate {rate:g}: no {missing} MLP runs, so no sparse-vs-dense comparison.")
            continue
        cmp = _compare(df, sparse, dense, rate, primary)
        acc, fl, ratio, tr = cmp["score"], cmp["flops"], cmp["flop_ratio"], cmp["time"]
        outcome, lead = _outcome(acc, higher)
        if outcome in outcomes:
            outcomes[outcome].append(f"{rate:g}")
        if tr.direction in times:
            times[tr.direction].append(f"{rate:g}")
            time_ratios.append(tr.ratio)
            if tr.direction == "higher" and np.isfinite(ratio) and 0 < ratio < 1:
                fewer_but_slower.append(f"{rate:g}")
        if np.isfinite(ratio) and ratio > 0:
            flop_ratios.append(ratio)
            flops = (f"Training FLOPs {fmt_flops(sparse['flops_train_mean'], sparse['flops_train_ci'])} vs "
                     f"{fmt_flops(dense['flops_train_mean'], dense['flops_train_ci'])}: {ratio:.3g}× dense "
                     f"({1 / ratio:.3g}× fewer)")
            if fl.note.startswith("constant"):
                flops += ", the same difference on every seed"
            elif fl.n >= 2 and not fl.note:
                flops += f", difference {'significant' if fl.significant else 'not significant'} ({p_text(fl.p_ttest)})"
        else:
            flops = "Training FLOPs not available"
        sentence = (
            f"rate {rate:g}: {lead}. Best sparse: {sparse['label']}, {primary_name} "
            f"{fmt_ci(sparse[f'{primary}_mean'], sparse[f'{primary}_ci'])}; best dense: {dense['label']}, "
            f"{fmt_ci(dense[f'{primary}_mean'], dense[f'{primary}_ci'])}; difference "
            f"{fmt_interval(acc.diff, acc.diff_half_width)} (paired t-test {p_text(acc.p_ttest)}, "
            f"Wilcoxon {p_text(acc.p_wilcoxon)}, n = {acc.n}). {flops}. "
            f"{_time_text(tr, ratio, sparse.get('fit_time_s_mean', math.nan), dense.get('fit_time_s_mean', math.nan))}."
        )
        if baseline is not None:
            cmp_b = _pair(df, sparse["config_id"], baseline["config_id"], rate, primary)
            better_b = (cmp_b.diff > 0) if higher else (cmp_b.diff < 0)
            sentence += (
                f" Best baseline: {baseline['label']}, {fmt_ci(baseline[f'{primary}_mean'], baseline[f'{primary}_ci'])}"
                f" (sparse {'higher' if better_b else 'lower'} by {abs(cmp_b.diff):.3f}, "
                f"{'significant' if cmp_b.significant else 'not significant'}, {p_text(cmp_b.p_ttest)})."
            )
        sentences.append(sentence)
        table.append([
            _rate_label(summary, rate), sparse["label"], fmt_ci(sparse[f"{primary}_mean"], sparse[f"{primary}_ci"]),
            dense["label"], fmt_ci(dense[f"{primary}_mean"], dense[f"{primary}_ci"]),
            fmt_interval(acc.diff, acc.diff_half_width), fmt_p(acc.p_ttest), fmt_p(acc.p_wilcoxon), str(acc.n),
            lead.replace(" (significant)", "") if outcome in ("win", "lose") else lead,
            fmt_flops(sparse["flops_train_mean"]), fmt_flops(dense["flops_train_mean"]),
            f"{ratio:.3g}" if np.isfinite(ratio) else "–",
            (f"{fmt_ratio(tr)}, {TIME_WORDS[tr.direction]}" if tr.finite else "–"),
        ])
    n_rates = sum(len(v) for v in outcomes.values())
    if n_rates:
        def where(key, groups=outcomes):
            rates = groups[key]
            if not rates:
                return "no rate"
            return f"{len(rates)} rate{'s' if len(rates) > 1 else ''} ({', '.join(rates)})"

        summary_line = (
            f"Of {n_rates} missing rate(s), the best sparse MLP was significantly better than the best dense MLP "
            f"at {where('win')}, significantly worse at {where('lose')}, and not significantly different at "
            f"{where('ns')}" + (f", identical at {where('tie')}" if outcomes["tie"] else "")
            + f" (paired t-test over replicates, α = 0.05; configurations chosen by {'validation' if use_val else 'test'} "
            f"{primary_name})."
        )
        if outcomes["lose"]:
            summary_line += f" **Sparse loses at rate {', '.join(outcomes['lose'])}.**"
        if time_ratios:
            span = lambda v: f"{min(v):.3g}" if min(v) == max(v) else f"{min(v):.3g}–{max(v):.3g}"  # noqa: E731
            summary_line += (
                f" Fit time: the best sparse MLP took longer than the best dense MLP at {where('higher', times)}, "
                f"less time at {where('lower', times)}"
                + (f", no clear difference at {where('unclear', times)}" if times["unclear"] else "")
                + f" (fit-time ratio sparse / dense {span(time_ratios)}×"
                + (f"; training FLOP ratio {span(flop_ratios)}×" if flop_ratios else "") + ")."
            )
            if fewer_but_slower:
                summary_line += (f" **Fewer FLOPs, yet slower: at rate {', '.join(fewer_but_slower)} the sparse fits "
                                 f"took longer than the dense ones.**")
        blocks.append(("p", summary_line))
    if table:
        blocks.append(("table", ["rate", "best sparse", primary_name, "best dense", primary_name,
                                 "Δ (sparse − dense) [95 % CI]", "p (t-test)", "p (Wilcoxon)", "n", "verdict",
                                 "train FLOPs sparse", "train FLOPs dense", "FLOP ratio",
                                 "fit-time ratio [95 % CI]"], table))
    blocks.append(("ul", sentences))
    return blocks


def comparisons(df, summary, task, use_val) -> list[dict]:
    """Per rate and sparse model: that model's best configuration against the best dense MLP.

    The same selection and pairing as the headline, one record per (rate, sparse model), for the
    overview figure and ``comparisons.csv``; ``headline`` marks the configuration the headline
    compares (the best sparse configuration over all sparse models).
    """
    metrics = task_metrics(task)
    primary, primary_name, higher = metrics[0]
    order = {m: i for i, m in enumerate(list_models())}
    out = []
    for rate in sorted(summary["rate"].unique()):
        rows = summary[summary["rate"] == rate]
        dense = _choose(rows[rows["model"] == "dense"], primary, higher, use_val)
        sparse_rows = rows[[_is_sparse_model(m) for m in rows["model"]]]
        best = _choose(sparse_rows, primary, higher, use_val)
        if dense is None or best is None:
            continue
        for model in sorted(set(sparse_rows["model"]), key=lambda m: (order.get(m, 99), m)):
            sparse = _choose(sparse_rows[sparse_rows["model"] == model], primary, higher, use_val)
            if sparse is None:
                continue
            cmp = _compare(df, sparse, dense, rate, primary)
            acc, tr = cmp["score"], cmp["time"]
            half = acc.diff_half_width
            out.append({
                "rate": float(rate), "model": model, "sparse": sparse["label"], "dense": dense["label"],
                "headline": sparse["config_id"] == best["config_id"], "metric": primary, "metric_name": primary_name,
                "higher_is_better": higher, "n": acc.n, "diff": acc.diff,
                "diff_low": acc.diff - half if np.isfinite(half) else math.nan,
                "diff_high": acc.diff + half if np.isfinite(half) else math.nan,
                "p_ttest": acc.p_ttest, "flop_ratio": cmp["flop_ratio"], "time_ratio": tr.ratio,
                "time_low": tr.low, "time_high": tr.high, "time_n": tr.n, "time": TIME_WORDS[tr.direction],
                "fit_time_sparse_s": sparse.get("fit_time_s_mean", math.nan),
                "fit_time_dense_s": dense.get("fit_time_s_mean", math.nan),
                # the realised rate where the store records one (the share of training cells missing)
                "realised_rate": float(sparse.get("realised_rate_mean", math.nan)),
            })
    return out


# ---------------------------------------------------------------------- tables and plots
def _config_order(summary):
    """(config_id, label) pairs in a stable reading order: the models in list_models() order (MLPs by registration, then baselines)."""
    order = {m: i for i, m in enumerate(list_models())}
    configs = summary.drop_duplicates("config_id")
    key = lambda r: (order.get(r["model"], 99), r["representation"],  # noqa: E731
                     -1 if _isnan(r["sparsity"]) else r["sparsity"], -1 if _isnan(r["epsilon"]) else r["epsilon"])
    rows = sorted((r for _, r in configs.iterrows()), key=key)
    return [(r["config_id"], r["label"]) for r in rows]


def _realised(summary, rate) -> float:
    """Mean realised rate (share of all training cells missing, existing NaN included) of the runs
    at nominal ``rate``; NaN when the summary has none (rows from before the store recorded it)."""
    if "realised_rate_mean" not in summary:
        return math.nan
    v = summary.loc[summary["rate"] == rate, "realised_rate_mean"].to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


def _rate_label(summary, rate) -> str:
    """``0.3 (realised 0.300)``: the nominal rate and the share of all training cells missing; on data with
    missing values of its own (rate-0 runs miss cells) ``real`` and ``real + mcar 0.2`` instead of 0 and 0.2."""
    realised = _realised(summary, rate)
    label = f"{rate:g}"
    if _has_own_missing(summary):
        label = "real" if rate == 0 else f"real + {summary['mechanism'].iloc[0]} {rate:g}"
    return label + (f" (realised {realised:.3f})" if np.isfinite(realised) else "")


def _has_own_missing(summary) -> bool:
    """Whether the data misses values nobody simulated: its rate-0 runs' training rows have missing cells."""
    own = _realised(summary, 0.0)
    return bool(np.isfinite(own) and own > 0)


def _rate_gaps(summary, tol=0.005) -> list[str]:
    """Nominal rates whose realised rate differs by more than ``tol`` (e.g. MAR runs stored before the
    rate counted all cells, or data with NaN of its own at rate 0), as ``0.3 (realised 0.210)``."""
    return [_rate_label(summary, r) for r in sorted(summary["rate"].unique())
            if abs(_realised(summary, r) - r) > tol and not (r == 0 and _has_own_missing(summary))]  # real: expected


def _metric_table(summary, metric, kind="score"):
    rates = sorted(summary["rate"].unique())
    rows = []
    for cid, label in _config_order(summary):
        g = summary[summary["config_id"] == cid]
        cells = []
        for r in rates:
            hit = g[g["rate"] == r]
            if hit.empty or not np.isfinite(hit[f"{metric}_mean"].iloc[0]):
                cells.append("–")
                continue
            mean, half = hit[f"{metric}_mean"].iloc[0], hit[f"{metric}_ci"].iloc[0]
            cells.append(fmt_flops(mean, half) if kind == "flops" else fmt_ci(mean, half))
        rows.append([label, str(int(g["n"].max())), *cells])
    return ["configuration", "n", *[f"rate {_rate_label(summary, r)}" for r in rates]], rows


def _styles(summary):
    """Plot style per configuration: colour by model, line style by representation, marker by sparsity."""
    models = list_models()
    reps = sorted(summary["representation"].unique())
    levels = sorted({(None if _isnan(s) else s, None if _isnan(e) else e)
                     for s, e in zip(summary["sparsity"], summary["epsilon"])}, key=lambda t: (t[0] or -1, t[1] or -1))
    lines, markers = ["-", "--", ":", "-."], ["o", "s", "^", "D", "v", "P", "X"]
    styles = {}
    for _, r in summary.drop_duplicates("config_id").iterrows():
        level = (None if _isnan(r["sparsity"]) else r["sparsity"], None if _isnan(r["epsilon"]) else r["epsilon"])
        styles[r["config_id"]] = {
            "color": f"C{models.index(r['model']) % 10}" if r["model"] in models else "k",
            "linestyle": lines[reps.index(r["representation"]) % len(lines)],
            "marker": markers[levels.index(level) % len(markers)],
        }
    return styles


def _plots(summary, out_dir: Path, stem: str, primary, primary_name):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    configs = _config_order(summary)
    styles = _styles(summary)

    def line_plot(column, ylabel, fname, logy=False):
        fig, ax = plt.subplots(figsize=(8.5, 4.8))
        drawn = 0
        for cid, label in configs:
            g = summary[summary["config_id"] == cid].sort_values("rate")
            y = g[f"{column}_mean"].to_numpy(dtype=float)
            if not np.isfinite(y).any():
                continue
            err = np.nan_to_num(g[f"{column}_ci"].to_numpy(dtype=float))
            # at the realised rate (share of all training cells missing); the nominal one where not recorded
            x = g["realised_rate_mean"].to_numpy(dtype=float) if "realised_rate_mean" in g else np.full(len(g), np.nan)
            x = np.where(np.isfinite(x), x, g["rate"].to_numpy(dtype=float))
            ax.errorbar(x, y, yerr=err, capsize=3, label=label, **styles[cid])
            drawn += 1
        if not drawn:
            plt.close(fig)
            return
        ax.set_xlabel("realised missing rate (share of all training cells missing)")
        ax.set_ylabel(ylabel)
        if logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        fig.tight_layout()
        path = fig_dir / fname
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append((path, ylabel.split(" (")[0] + " vs realised missing rate"))

    line_plot(primary, f"test {primary_name} (mean ± 95 % CI)", f"{stem}_{primary}_vs_rate.png")
    line_plot("flops_train", "training FLOPs (mean ± 95 % CI, log scale)", f"{stem}_train_flops_vs_rate.png", logy=True)

    # accuracy vs realised sparsity, one panel per rate; each sparse line starts at the dense MLP
    # (same representation if there is one, else the best dense MLP at that rate) at sparsity 0
    if any(_is_sparse_model(m) for m in summary["model"]):
        rates = sorted(summary["rate"].unique())
        ncols = min(4, len(rates))
        nrows = math.ceil(len(rates) / ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.8 * ncols, 3.1 * nrows), squeeze=False, sharey=True)
        labels_seen = {}
        for ax, rate in zip(axes.ravel(), rates):
            at = summary[summary["rate"] == rate]
            dense_all = at[at["model"] == "dense"]
            for (model, rep), g in at[[_is_sparse_model(m) for m in at["model"]]].groupby(["model", "representation"]):
                dense = dense_all[dense_all["representation"] == rep]
                if dense.empty and not dense_all.empty:
                    dense = dense_all.loc[[dense_all[f"{primary}_mean"].astype(float).idxmax()]]
                xs = list(1 - g["density_mean"].to_numpy(dtype=float))
                ys = list(g[f"{primary}_mean"].to_numpy(dtype=float))
                es = list(np.nan_to_num(g[f"{primary}_ci"].to_numpy(dtype=float)))
                if not dense.empty:
                    xs = [0.0, *xs]
                    ys = [float(dense[f"{primary}_mean"].iloc[0]), *ys]
                    es = [float(np.nan_to_num(dense[f"{primary}_ci"].iloc[0])), *es]
                order = np.argsort(xs)
                style = dict(styles[g["config_id"].iloc[0]], marker="o")
                label = f"{display_name(model)} ({rep})"
                handle = ax.errorbar(np.asarray(xs)[order], np.asarray(ys)[order], yerr=np.asarray(es)[order],
                                     capsize=3, **style)
                labels_seen.setdefault(label, handle)
            ax.set_title(f"rate {_rate_label(summary, rate)}", fontsize=9)
            ax.set_xlabel("sparsity (1 − density); 0 = dense MLP", fontsize=8)
            ax.grid(alpha=0.3)
        for ax in axes.ravel()[len(rates):]:
            ax.axis("off")
        axes[0, 0].set_ylabel(f"test {primary_name}")
        n_rows_legend = math.ceil(len(labels_seen) / 3)
        fig.legend(list(labels_seen.values()), list(labels_seen), fontsize=7, loc="lower center",
                   ncol=min(3, max(1, len(labels_seen))))
        fig.tight_layout(rect=(0, min(0.4, 0.05 + 0.05 * n_rows_legend / nrows), 1, 1))
        path = fig_dir / f"{stem}_{primary}_vs_sparsity.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append((path, f"{primary_name} vs sparsity, per missing rate"))
    return files


OVERVIEW_FIGURE = "overview_sparse_vs_dense.png"


def _overview_blocks(records, src: str) -> list:
    """The report's opening section: counts over every comparison of the figure, then the figure."""
    seen, unique = set(), []
    for r in records:  # rate-0 comparisons are the same runs in every mechanism's group: count them once
        key = (r["experiment"], r["dataset"], r["model"]) + ((0.0,) if r["rate"] == 0 else (r["mechanism"], r["rate"]))
        if key not in seen:
            seen.add(key)
            unique.append(r)
    n = len(unique)
    better = worse = 0
    for r in unique:
        lo, hi = r["diff_low"], r["diff_high"]
        if np.isfinite(lo) and np.isfinite(hi) and (lo > 0 or hi < 0):
            good = (lo > 0) == bool(r["higher_is_better"])
            better, worse = better + good, worse + (not good)
    slower = sum(r["time"] == "slower" for r in unique)
    faster = sum(r["time"] == "faster" for r in unique)
    timed = sum(bool(r["time"]) for r in unique)
    flops = [r["flop_ratio"] for r in unique if np.isfinite(r["flop_ratio"])]
    times = [r["time_ratio"] for r in unique if np.isfinite(r["time_ratio"])]
    text = (f"{n} comparisons of a sparse MLP (each sparse model's best configuration) with the best dense MLP, "
            f"per dataset × mechanism × missing rate. Test score: sparse better in {better}, worse in {worse}, "
            f"no significant difference in {n - better - worse} (95 % interval of the paired difference).")
    if times:
        text += (f" Fit time: sparse slower in {slower}, faster in {faster}, no clear difference in {timed - slower - faster} "
                 f"(fit-time ratio sparse / dense: median {np.median(times):.3g}×, range {min(times):.3g}–{max(times):.3g}×)")
        text += (f", while training FLOPs were {np.median(flops):.3g}× dense (median)." if flops else ".")
    caption = ("Sparse vs dense MLP per dataset × mechanism × rate. Left: difference in test score (sparse − dense, mean "
               "over paired replicates, 95 % t-interval; filled: the interval excludes 0). Right, log scale: fit time "
               "sparse / dense (geometric mean of per-replicate ratios, 95 % interval) and training FLOPs sparse / dense "
               "(×); right of the line at 1, the sparse fits cost more.")
    return [("h", 2, "Overview: sparse vs dense MLP"), ("p", text), ("img", src, caption)]


def _overview_cells(records):
    """{(experiment, dataset): {row: {model: record}}} with row = (0, "", 0) for rate 0 (the same runs in every
    mechanism's group, shown once) or (1, mechanism, rate); rows and facets in reading order."""
    facets = {}
    for r in sorted(records, key=lambda r: (r["experiment"], r["dataset"], r["rate"] != 0, r["mechanism"], r["rate"])):
        row = (0, "", 0.0) if r["rate"] == 0 else (1, r["mechanism"], float(r["rate"]))
        facets.setdefault((r["experiment"], r["dataset"]), {}).setdefault(row, {}).setdefault(r["model"], r)
    return {k: dict(sorted(v.items())) for k, v in facets.items()}


def _overview_plot(records, out_dir: Path, multi_exp: bool):
    """One forest plot of every sparse-vs-dense comparison: a block per dataset, a line per mechanism × rate,
    a marker per sparse model; left the score difference with its 95 % CI, right the fit-time ratio with
    its CI and the training-FLOP ratio (log scale). None when there is nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    facets = _overview_cells(records)
    if not facets:
        return None
    names = list_models()
    models = sorted({r["model"] for r in records}, key=lambda m: (names.index(m) if m in names else 99, m))
    colour = {m: f"C{names.index(m) % 10}" if m in names else "k" for m in models}
    n_rows = [len(rows) for rows in facets.values()]
    per_row = 0.2 + 0.08 * len(models)
    gap = 0.45  # inches between facets, for the dataset's title
    heights = [n * per_row + 0.1 for n in n_rows]
    fig = plt.figure(figsize=(11, max(3.2, sum(heights) + gap * (len(heights) - 1) + 1.6)))
    grid = fig.add_gridspec(len(facets), 2, height_ratios=heights, width_ratios=[1, 1],
                            hspace=gap / float(np.mean(heights)), wspace=0.04)
    first_metric = next(iter(records))["metric_name"]
    axes = []
    for i, ((exp, dataset), rows) in enumerate(facets.items()):
        left = fig.add_subplot(grid[i, 0], sharex=axes[0][0] if axes else None)
        right = fig.add_subplot(grid[i, 1], sharex=axes[0][1] if axes else None, sharey=left)
        axes.append((left, right))
        offsets = (np.arange(len(models)) - (len(models) - 1) / 2) * (0.75 / max(len(models), 1))
        labels = []
        for y, (row, by_model) in enumerate(rows.items()):
            realised = [v for v in (r.get("realised_rate", math.nan) for r in by_model.values()) if np.isfinite(v)]
            realised = float(np.mean(realised)) if realised else math.nan
            label = "no missing values" if row[0] == 0 else f"{row[1].upper()} {row[2]:g}"
            if np.isfinite(realised) and abs(realised - row[2]) > 0.01:  # rate not reached (or NaN of its own)
                label += f" (realised {realised:.2f})"
            labels.append(label)
            for k, m in enumerate(models):
                r = by_model.get(m)
                if r is None or not np.isfinite(r["diff"]):
                    continue
                yy = y + offsets[k]
                lo, hi = r["diff_low"], r["diff_high"]
                has_ci = np.isfinite(lo) and np.isfinite(hi)
                better = r["diff"] > 0 if r["higher_is_better"] else r["diff"] < 0
                clear = has_ci and (lo > 0 or hi < 0)
                left.errorbar([r["diff"]], [yy], xerr=[[r["diff"] - lo], [hi - r["diff"]]] if has_ci else None,
                              fmt="o", ms=5, capsize=2, lw=1.2, color=colour[m],
                              mfc=colour[m] if clear else "white", mew=1.2, zorder=3)
                if clear and not better:
                    left.plot([r["diff"]], [yy], marker="o", ms=9, mfc="none", mec="k", mew=1.1, zorder=2)
                t, tlo, thi = r["time_ratio"], r["time_low"], r["time_high"]
                if np.isfinite(t) and t > 0:
                    t_ci = np.isfinite(tlo) and np.isfinite(thi)
                    right.errorbar([t], [yy], xerr=[[t - tlo], [thi - t]] if t_ci else None, fmt="o", ms=5, capsize=2,
                                   lw=1.2, color=colour[m], zorder=3)
                f = r["flop_ratio"]
                if np.isfinite(f) and f > 0:
                    right.plot([f], [yy], marker="x", ms=6, mew=1.4, color=colour[m], ls="none", zorder=3)
        for ax in (left, right):
            ax.set_ylim(len(rows) - 0.5, -0.5)
            for y in range(len(rows)):
                if y % 2:
                    ax.axhspan(y - 0.5, y + 0.5, color="#f2f2f2", zorder=0, lw=0)
            ax.grid(axis="x", alpha=0.35)
            ax.tick_params(axis="x", labelbottom=(i == len(facets) - 1), labelsize=8)
        left.set_yticks(range(len(rows)), labels, fontsize=8)
        right.tick_params(axis="y", labelleft=False, left=False)
        left.axvline(0, color="k", lw=0.9, zorder=1)
        right.axvline(1, color="k", lw=0.9, zorder=1)
        right.set_xscale("log")
        metric = next(iter(next(iter(rows.values())).values()))["metric_name"]
        title = dataset + (f" ({exp})" if multi_exp else "") + (f" — Δ {metric}" if metric != first_metric else "")
        left.set_title(title, loc="left", fontsize=10, fontweight="bold", pad=3)
    axes[-1][0].set_xlabel(f"Δ test {first_metric}, sparse − dense (95 % CI)\n← sparse worse · sparse better →", fontsize=9)
    axes[-1][1].set_xlabel("sparse / dense, log scale: ● fit time (95 % CI), × training FLOPs\n"
                           "← sparse cheaper · sparse costlier →", fontsize=9)
    from matplotlib.ticker import LogLocator, FuncFormatter

    axes[0][1].xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axes[0][1].xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axes[0][1].xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    handles = [Line2D([], [], color=colour[m], marker="o", ls="none", ms=6, label=display_name(m)) for m in models]
    handles += [
        Line2D([], [], color="0.3", marker="o", ls="none", ms=6, mfc="white", label="Δ interval contains 0"),
        Line2D([], [], color="0.3", marker="o", ls="none", ms=6, label="Δ interval excludes 0"),
        Line2D([], [], color="none", marker="o", ls="none", ms=9, mfc="none", mec="k", mew=1.1,
               label="sparse significantly worse"),
        Line2D([], [], color="0.3", marker="x", ls="none", ms=6, mew=1.4, label="training FLOP ratio"),
    ]
    height = fig.get_figheight()
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 4), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 1.0))
    fig.subplots_adjust(left=0.13, right=0.98, top=1 - 0.75 / height, bottom=0.8 / height)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    path = fig_dir / OVERVIEW_FIGURE
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path



# ---------------------------------------------------------------------- entry point
def grid_sections(frame, out_dir: Path, plots: bool) -> dict:
    """Headline and detail blocks, the overview figure and the summary tables of the grid runs in ``frame``."""
    head_blocks, detail_blocks, summaries = [], [], []
    kinds = frame["kind"].fillna("grid") if "kind" in frame else None
    grid_frame = frame[kinds == "grid"] if kinds is not None else frame
    df = prepare(grid_frame) if len(grid_frame) else grid_frame
    overview = []  # every sparse model's best configuration vs the best dense MLP, per group and rate
    groups = list(df.groupby(["experiment", "dataset", "mechanism"], sort=True)) if len(df) else []
    multi_exp = df["experiment"].nunique() > 1 if len(df) else False
    if groups:
        head_blocks.append(("h", 2, "Headline"))
    for (exp, dataset, mechanism), g in groups:
        task = g["task"].iloc[0]
        metrics = task_metrics(task)
        primary, primary_name, _ = metrics[0]
        summary = summarise(g, metrics)
        summaries.append(summary)
        use_val = bool(g[f"val_{primary}"].notna().all())
        n_rep = g.groupby("config_id")["replicate"].nunique()
        name = f"{dataset}, {mechanism.upper() if mechanism != 'none' else 'no missingness'}" + (f" ({exp})" if multi_exp else "")
        if _has_own_missing(summary):  # real missing values, alone or with simulated ones on top
            name = f"{dataset}, real missing values" + (f" + {mechanism.upper()}" if mechanism != "none" else "") + (f" ({exp})" if multi_exp else "")
        head_blocks.append(("h", 3, name))
        reps = f"{n_rep.min()}" if n_rep.min() == n_rep.max() else f"{n_rep.min()}–{n_rep.max()}"
        rates = sorted(g["rate"].unique())
        realised = [_realised(summary, r) for r in rates]
        gaps = _rate_gaps(summary)
        head_blocks.append(("p", f"{len(g)} runs, {reps} replicates (seeds × folds) per configuration and rate; "
                                 f"rates {', '.join(f'{r:g}' for r in rates)}"
                            + (f" (realised {', '.join(f'{v:.3f}' for v in realised)}: the share of all cells of the "
                               "training rows missing, existing NaN included; mean over runs)"
                               if np.isfinite(realised).any() else "") + "."
                            + (f" **The realised rate is not the nominal one at rate {', '.join(gaps)}**: the data "
                               "has missing values of its own, or these runs were stored before a rate counted all "
                               "cells (MAR then removed only the non-driver columns' share), so they hold a different "
                               "amount of missing information than the rate says." if gaps else "")))
        head_blocks.extend(headline(g, summary, task, use_val))
        overview.extend(dict(rec, experiment=exp, dataset=dataset, mechanism=mechanism)
                        for rec in comparisons(g, summary, task, use_val))

        stem = slug(exp, dataset, mechanism)
        detail_blocks.append(("h", 2, f"Details: {name}"))
        for metric, mname, _ in metrics:
            if f"{metric}_mean" in summary and np.isfinite(summary[f"{metric}_mean"].to_numpy(dtype=float)).any():
                headers, rows = _metric_table(summary, metric)
                detail_blocks.append(("h", 3, f"Test {mname} (mean ± 95 % CI over replicates)"))
                detail_blocks.append(("table", headers, rows))
        for metric, mname in (("flops_train", "Training FLOPs"), ("flops_train_dense", "Training FLOPs of the dense equivalent"),
                              ("flops_inference", "Inference FLOPs per sample")):
            if np.isfinite(summary[f"{metric}_mean"].to_numpy(dtype=float)).any():
                headers, rows = _metric_table(summary, metric, kind="flops")
                detail_blocks.append(("h", 3, f"{mname} (mean ± 95 % CI)"))
                detail_blocks.append(("table", headers, rows))
        headers, rows = _metric_table(summary, "fit_time_s")
        detail_blocks.append(("h", 3, "Fit time, seconds (mean ± 95 % CI)"))
        detail_blocks.append(("table", headers, rows))
        if plots:
            for path, caption in _plots(summary, out_dir, stem, primary, primary_name):
                detail_blocks.append(("img", path.relative_to(out_dir).as_posix(), caption))

    # the overview figure opens the report when there is more than one cell to compare
    cells = {(r["experiment"], r["dataset"]) + ((0.0,) if r["rate"] == 0 else (r["mechanism"], r["rate"]))
             for r in overview}
    if plots and len(cells) > 1:
        path = _overview_plot(overview, out_dir, multi_exp)
        if path is not None:
            head_blocks[0:0] = _overview_blocks(overview, path.relative_to(out_dir).as_posix())

    out = {"head": head_blocks, "detail": detail_blocks, "summary": summaries, "tables": {}}
    if overview:
        # every sparse-vs-dense comparison of the overview, one row each (rate-0 rows once per mechanism group)
        lead = ["experiment", "dataset", "mechanism", "rate", "model"]
        frame_cmp = pd.DataFrame(overview)
        out["tables"]["comparisons"] = frame_cmp[lead + [c for c in frame_cmp.columns if c not in lead]]
    return out
