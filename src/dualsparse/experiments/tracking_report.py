"""Report sections of the ``[dynamics]`` study; each appears only when its runs are in the store.

* **Learning dynamics** (tracked grid runs): per model, the per-example statistics (forgetting
  events, unforgettable / never-learned shares, how many flipped labels end up fitted, how many of
  the hardest k % are flipped labels); whether two models find the same examples hard (Spearman
  rank correlation and overlap of the hardest k %, compared with the seed-to-seed noise floor);
  compression-identified exemplars (test rows where the modal prediction over seeds of a model
  differs from the reference's); forgetting caused by topology updates; forgetting histograms
  and data maps (confidence vs variability) per model.
* **Data subsets** (subset runs): accuracy vs the share of training rows kept, per strategy, for
  every trained model next to the same model on all rows, with the joint FLOP saving (data
  pruning plus weight sparsity) against the dense model on all rows.
Per-example agreement between two models is measured over pairs of *different* seeds (model seed
i vs reference seed j, i != j), exactly like the noise floor (reference seed i vs reference seed
j), so the two numbers are comparable; each seed contributes the mean over its pairs. Two noisy
rankings of the same underlying hardness cannot correlate more than the geometric mean of their
own seed-to-seed agreements (Spearman's attenuation bound), so the *ceiling* for model-vs-reference
is sqrt(noise floor of the reference x the model's own seed-to-seed agreement), and the
*disattenuated* agreement is vs-reference / ceiling: about 1 means the model finds the same
examples hard and differs only by its own seed noise; the report calls >= 0.95 "the same
examples", 0.8-0.95 "largely the same, with a systematic difference", below 0.8 "different
examples". Welch's t-test of the per-seed values against the per-seed ceilings is an
approximation (the pairs share runs).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sstats

from ..dynamics import STRATEGIES, compare, compression_identified, hardness, modal_prediction
from .formatting import fmt_interval, fmt_p, p_text, slug
from .models import model_order
from .report_common import ci_text, cfg_id, cfg_label, mean_of, metrics_of, nan_none, welch_p
from .stats import mean_ci, paired, ratio_ci

SCORES = (("forgetting", "forgetting events"), ("forgetting_eval", "forgetting between epoch-end evaluations"),
          ("el2n", "EL2N"), ("grand", "GraNd"), ("confidence", "confidence"))
SAME, LARGELY = 0.95, 0.80  # disattenuated agreement: "the same examples" / "largely the same"

# ---------------------------------------------------------------------- learning dynamics
def _stats_frames(ex_run):
    """(train frame indexed by example, test frame indexed by example) of one run's rows."""
    tr = ex_run[ex_run["split"] == "train"].set_index("example").sort_index()
    te = ex_run[ex_run["split"] == "test"].set_index("example").sort_index()
    stats = pd.DataFrame({
        "in_train": np.ones(len(tr), dtype=bool),
        "label": tr["label"].to_numpy(),
        "forgetting_events": pd.to_numeric(tr["forgetting_events"], errors="coerce").astype(float).to_numpy(),
        "forgetting_events_eval": pd.to_numeric(tr["forgetting_events_eval"], errors="coerce").astype(float).to_numpy(),
        "prediction": tr["prediction"].to_numpy(),
        "never_learned": pd.to_numeric(tr["never_learned"], errors="coerce").astype(float).to_numpy(),
        "unforgettable": pd.to_numeric(tr["unforgettable"], errors="coerce").astype(float).to_numpy(),
        "confidence": pd.to_numeric(tr["confidence"], errors="coerce").astype(float).to_numpy(),
        "variability": pd.to_numeric(tr["variability"], errors="coerce").astype(float).to_numpy(),
        "correctness": pd.to_numeric(tr["correctness"], errors="coerce").astype(float).to_numpy(),
        "el2n": pd.to_numeric(tr["el2n"], errors="coerce").astype(float).to_numpy(),
        "grand": pd.to_numeric(tr["grand"], errors="coerce").astype(float).to_numpy(),
        "noisy": pd.to_numeric(tr["noisy"], errors="coerce").fillna(0).astype(bool).to_numpy(),
        "topology_forgetting": pd.to_numeric(tr["topology_forgetting"], errors="coerce").astype(float).to_numpy(),
    }, index=tr.index)
    for col in ("el2n", "grand"):
        if not np.isfinite(stats[col].to_numpy()).any():
            stats = stats.drop(columns=col)
    return stats, te


def _align(a, b):
    common = a.index.intersection(b.index)
    return a.loc[common].reset_index(drop=True), b.loc[common].reset_index(drop=True)


def _eval_forgetting(stats):
    """Forgetting between consecutive epoch-end evaluations, never-learned rows above every count (a
    topology update followed by relearning within the epoch leaves no trace here)."""
    f = stats["forgetting_events_eval"].to_numpy(dtype=float)
    never = stats["never_learned"].to_numpy(dtype=float)
    top = np.nanmax(f) + 1 if np.isfinite(f).any() else 1.0
    return np.where(never == 1, top, f)


def _agreement(stats_a: dict, stats_b: dict, k: float) -> dict:
    """Per seed of ``a``: the mean over seeds j != i of ``b`` of compare(a_i, b_j); {metric: [values]}."""
    out = {}
    for i, sa in stats_a.items():
        vals = {}
        for j, sb in stats_b.items():
            if i == j:
                continue
            x, y = _align(sa, sb)
            if len(x) < 2:
                continue
            for key, v in compare(x, y, k=k).items():
                if key.startswith(("spearman_", "overlap_")):
                    vals.setdefault(key, []).append(v)
            fx, fy = _eval_forgetting(x), _eval_forgetting(y)
            ok = np.isfinite(fx) & np.isfinite(fy)
            if ok.sum() > 2:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    vals.setdefault("spearman_forgetting_eval", []).append(float(sstats.spearmanr(fx[ok], fy[ok]).statistic))
        for key, v in vals.items():
            out.setdefault(key, []).append(float(np.nanmean(v)))
    return out


def _verdict(ratio):
    if not np.isfinite(ratio):
        return "–"
    if ratio >= SAME:
        return "the same examples"
    if ratio >= LARGELY:
        return "largely the same"
    return "different examples"


def _hard_clean_fitted(stats_ref: dict, stats_model: dict, k: float) -> list:
    """Per seed of the model: the share of the reference's hardest k % *clean* rows (by forgetting,
    mean over the reference's seeds) that the model predicts right at the end of training."""
    frames = list(stats_ref.values())
    if not frames:
        return []
    base = frames[0]
    score = np.nanmean(np.stack([hardness(f.reindex(base.index), "forgetting") for f in frames]), axis=0)
    clean = ~base["noisy"].to_numpy()
    rows = np.flatnonzero(clean)
    m = max(1, int(round(k / 100 * rows.size)))
    hard = base.index[rows[np.argsort(-score[rows], kind="stable")[:m]]]
    out = []
    for st in stats_model.values():
        sub = st.reindex(hard)
        out.append(float(np.mean(sub["prediction"].to_numpy() == sub["label"].to_numpy())))
    return out


def _top_noisy(stats, by, k):
    score = hardness(stats, by) if by in ("forgetting", "el2n", "grand") else None
    if score is None or not np.isfinite(score).any():
        return math.nan
    m = max(1, int(round(k / 100 * len(stats))))
    order = np.lexsort((np.arange(len(stats)), -np.nan_to_num(score, nan=-np.inf)))[:m]
    return float(stats["noisy"].to_numpy()[order].mean())


@dataclass
class _Group:
    """One (experiment, dataset, mechanism, rate, representation) of tracked runs, read once for its sections."""

    exp: str
    dataset: str
    mechanism: str
    rate: float
    rep: str
    g: pd.DataFrame  # its runs
    metrics: dict  # run key -> metrics
    k: float  # hardest k %
    cfgs: dict  # configuration id -> {"model", "label", "runs": {seed (or (seed, fold)): run key}}
    order: list  # configuration ids in reading order
    ref_id: str  # the reference configuration
    stats: dict  # configuration id -> {seed: training-row statistics}
    tests: dict  # configuration id -> {seed: test-row labels and predictions}
    noise: float  # share of flipped training labels
    name: str
    n_train: int


def _group(point, g, ex, configs, metrics):
    """A group's configurations, their per-seed statistics and its reference (None without one)."""
    exp, dataset, mechanism, rate, rep = point
    raw = configs.get(exp, {})
    dyn = raw.get("dynamics", {}) if isinstance(raw.get("dynamics", {}), dict) else {}
    k = float(dyn.get("k", 10.0))
    models_present = sorted({m for m in g["model"]}, key=model_order)
    ref_model = dyn.get("reference", "dense" if "dense" in models_present else models_present[0])
    cfgs = {}
    for _, r in g.iterrows():
        cid = cfg_id(r["model"], nan_none(r["sparsity"]), nan_none(r["epsilon"]))
        cfgs.setdefault(cid, {"model": r["model"], "label": cfg_label(r["model"], nan_none(r["sparsity"]), nan_none(r["epsilon"])),
                              "runs": {}})
        cfgs[cid]["runs"][int(r["seed"]) if pd.isna(r["fold"]) else (int(r["seed"]), int(r["fold"]))] = r["run_key"]
    order = sorted(cfgs, key=lambda c: (model_order(cfgs[c]["model"]), c))
    ref_ids = [c for c in order if cfgs[c]["model"] == ref_model]
    if not ref_ids:
        return None
    ref_id = ref_ids[0]
    ex_g = ex[ex["run_key"].isin(set(g["run_key"]))]
    by_run = {key: _stats_frames(rows) for key, rows in ex_g.groupby("run_key")}
    stats = {c: {s: by_run[key][0] for s, key in cfgs[c]["runs"].items() if key in by_run} for c in order}
    tests = {c: {s: by_run[key][1] for s, key in cfgs[c]["runs"].items() if key in by_run} for c in order}
    noise = float(np.mean([st["noisy"].mean() for st in stats[ref_id].values()])) if stats[ref_id] else 0.0
    name = f"{dataset}" + (f", {mechanism} {rate:g}" if rate else "") + f", {rep} ({exp})"
    n_train = len(next(iter(stats[ref_id].values()))) if stats[ref_id] else 0
    return _Group(exp, dataset, mechanism, rate, rep, g, metrics, k, cfgs, order, ref_id, stats, tests, noise, name, n_train)


def dynamics_sections(ex, grid, configs, out_dir, plots, out):
    """The learning-dynamics sections: per group of tracked runs, per-model statistics, forgetting
    against the reference, agreement against the noise floor, compression-identified exemplars,
    forgetting by topology updates, and plots; the summary and agreement tables."""
    tracked_keys = set(ex["run_key"])
    runs = grid[grid["run_key"].isin(tracked_keys)]
    metrics = metrics_of(runs)
    out["head"].append(("h", 2, "Learning dynamics: which examples are hard, and do sparse networks agree?"))
    out["detail"].append(("h", 2, "Details: learning dynamics"))
    summary_rows = []
    for point, g in runs.groupby(["experiment", "dataset", "mechanism", "rate", "representation"], sort=True, dropna=False):
        G = _group(point, g, ex, configs, metrics)
        if G is None:
            continue
        cfgs, order, ref_id, stats, k, noise, name = G.cfgs, G.order, G.ref_id, G.stats, G.k, G.noise, G.name
        n_seeds, n_train = len(stats[ref_id]), G.n_train
        out["head"].append(("h", 3, name))
        out["head"].append(("p", f"{len(g)} tracked runs: {', '.join(cfgs[c]['label'] for c in order)}; {n_seeds} seeds on the "
                                 f"same {n_train} training rows" + (f", {noise:.0%} of their labels flipped" if noise else "")
                                 + f"; reference {cfgs[ref_id]['label']}; hardest k = {k:g} %."))
        _per_model_blocks(G, out, summary_rows)
        _forgetting_vs_reference(G, out)
        head_lines = _agreement_blocks(G, out)
        _cie_blocks(G, out, head_lines)
        _topology_blocks(G, out, head_lines)
        out["head"].append(("ul", head_lines or ["(one seed per model: no agreement or noise floor can be computed)"]))
        if plots:
            stem = slug(G.exp, G.dataset, G.mechanism, G.rate, G.rep, "dynamics")
            for path, caption in _dynamics_plots(stats, cfgs, order, out_dir, stem, noise):
                out["detail"].append(("img", path.relative_to(out_dir).as_posix(), caption))
    if summary_rows:
        out["tables"]["dynamics_summary"] = summary_rows


def _per_model_blocks(G, out, summary_rows):
    """Per-example statistics per model (mean ± 95 % CI over seeds); a summary row per configuration."""
    g, cfgs, order, ref_id, stats, exp, dataset = G.g, G.cfgs, G.order, G.ref_id, G.stats, G.exp, G.dataset
    rep, k, noise, name, metrics = G.rep, G.k, G.noise, G.name, G.metrics
    # --- per-model statistics
    table = []
    for c in order:
        runs_c = cfgs[c]["runs"]
        ms = [metrics[key] for key in runs_c.values() if key in metrics]
        accs = [float(g.loc[g["run_key"] == key, "accuracy"].iloc[0]) for key in runs_c.values()]
        row = [cfgs[c]["label"], str(len(runs_c)), ci_text(accs),
               ci_text([m.get("mean_forgetting_events", math.nan) for m in ms], 2),
               ci_text([100 * m.get("share_unforgettable", math.nan) for m in ms], 1),
               ci_text([100 * m.get("share_never_learned", math.nan) for m in ms], 1)]
        row.append(ci_text([100 * v for v in _hard_clean_fitted(stats[ref_id], stats[c], k)], 1))
        if noise:
            row.append(ci_text([100 * m.get("noisy_fitted", math.nan) for m in ms], 1))
            for by in ("forgetting", "el2n"):
                row.append(ci_text([100 * _top_noisy(st, by, k) for st in stats[c].values()], 1))
        table.append(row)
        summary_rows.append({"experiment": exp, "dataset": dataset, "representation": rep, "config": cfgs[c]["label"],
                             "model": cfgs[c]["model"], "n": len(runs_c), "accuracy": mean_of(accs),
                             "mean_forgetting_events": mean_of([m.get("mean_forgetting_events", math.nan) for m in ms]),
                             "share_unforgettable": mean_of([m.get("share_unforgettable", math.nan) for m in ms]),
                             "share_never_learned": mean_of([m.get("share_never_learned", math.nan) for m in ms])})
    headers = ["model", "seeds", "test accuracy", "forgetting events / example", "unforgettable %", "never learned %",
               f"reference's hardest {k:g} % clean rows fitted %"]
    if noise:
        headers += ["flipped labels fitted %", f"flipped in hardest {k:g} % by forgetting", f"flipped in hardest {k:g} % by EL2N"]
    out["head"].append(("p", "Per-example statistics per model (mean ± 95 % CI over seeds):"))
    out["head"].append(("table", headers, table))
    out["detail"].append(("h", 3, f"{name}: per-example statistics per model (mean ± 95 % CI over seeds)"))
    out["detail"].append(("table", headers, table))
    if noise:
        out["detail"].append(("p", f"Label noise: {noise:.1%} of the training labels are flipped, so a ranking that put the "
                                   f"flipped rows at random would have {100 * noise:.1f} % of them in its hardest {k:g} %."))


def _forgetting_vs_reference(G, out):
    """Forgetting events per example of every model against the reference, paired by seed."""
    cfgs, order, ref_id, metrics = G.cfgs, G.order, G.ref_id, G.metrics
    # forgetting vs the reference, paired by seed
    ref_f = {s: metrics[key].get("mean_forgetting_events") for s, key in cfgs[ref_id]["runs"].items() if key in metrics}
    lines = []
    for c in order:
        if c == ref_id:
            continue
        f = {s: metrics[key].get("mean_forgetting_events") for s, key in cfgs[c]["runs"].items() if key in metrics}
        common = sorted(set(f) & set(ref_f), key=str)
        cmp = paired([f[s] for s in common], [ref_f[s] for s in common])
        lines.append(f"{cfgs[c]['label']} forgets {cmp.mean_a:.3f} times per example vs {cmp.mean_b:.3f} for "
                     f"{cfgs[ref_id]['label']}: difference {fmt_interval(cmp.diff, cmp.diff_half_width)} "
                     f"(paired t-test {p_text(cmp.p_ttest)}, n = {cmp.n}).")
    if lines:
        out["detail"].append(("ul", lines))


def _agreement_blocks(G, out):
    """Agreement with the reference against the noise floor; the headline lines it gives."""
    cfgs, order, ref_id, stats, exp, dataset = G.cfgs, G.order, G.ref_id, G.stats, G.exp, G.dataset
    k, name = G.k, G.name
    # --- agreement with the reference vs the noise floor
    ag_rows, head_table, csv_rows = [], [], []
    floor = _agreement(stats[ref_id], stats[ref_id], k) if len(stats[ref_id]) >= 2 else {}
    head_scores = [(by, by_name) for by, by_name in SCORES if f"spearman_{by}" in floor]
    for c in order:
        own = _agreement(stats[c], stats[c], k) if len(stats[c]) >= 2 else {}
        cross = _agreement(stats[c], stats[ref_id], k) if c != ref_id else floor
        head_row = [cfgs[c]["label"]]
        for by, by_name in SCORES:
            for what in ("spearman", "overlap"):
                key = f"{what}_{by}"
                if key not in cross or key not in own or key not in floor:
                    continue
                x, fl, ow = cross[key], floor[key], own[key]
                ceil_seeds = [math.sqrt(a * b) if a > 0 and b > 0 else math.nan for a, b in zip(fl, ow)]
                ceiling = math.sqrt(mean_of(fl) * mean_of(ow)) if mean_of(fl) > 0 and mean_of(ow) > 0 else math.nan
                ratio = mean_of(x) / ceiling if ceiling and np.isfinite(ceiling) else math.nan
                p = welch_p(x, ceil_seeds) if c != ref_id else None
                score = f"{by_name}: {'Spearman ρ' if what == 'spearman' else f'overlap of hardest {k:g} %'}"
                ag_rows.append([cfgs[c]["label"], score, ci_text(x), ci_text(fl), ci_text(ow), f"{ceiling:.3f}",
                                "–" if c == ref_id else f"{ratio:.3f}", fmt_p(p), "–" if c == ref_id else _verdict(ratio)])
                csv_rows.append({"experiment": exp, "dataset": dataset, "model": cfgs[c]["label"], "score": score,
                                 "vs_reference": mean_of(x), "noise_floor": mean_of(fl), "own_seeds": mean_of(ow),
                                 "ceiling": ceiling, "disattenuated": ratio, "p": p})
                if what == "spearman":
                    head_row.append(f"{mean_of(x):.3f} / {ceiling:.3f} = {ratio:.2f}" if c != ref_id else f"floor {mean_of(fl):.3f}")
        head_table.append(head_row)
    if ag_rows:
        out["detail"].append(("h", 3, f"{name}: do the models find the same examples hard? (vs {cfgs[ref_id]['label']})"))
        out["detail"].append(("p", "Per-example rankings compared over pairs of different seeds: \"vs reference\" pairs the model's "
                                   "seed i with the reference's seed j ≠ i, the noise floor pairs two reference seeds, \"own "
                                   "seeds\" two seeds of the model (mean ± 95 % CI over seeds; each seed: the mean over its "
                                   "pairs). Ceiling = √(noise floor × own seeds): what two noisy rankings of the *same* "
                                   "hardness can reach; disattenuated = vs reference / ceiling (≥ 0.95: the same examples; "
                                   "0.8–0.95: largely the same; < 0.8: different examples); p: Welch's t-test of vs reference "
                                   "against the ceiling (approximate)."))
        out["detail"].append(("table", ["model", "score", "vs reference", "noise floor (reference seeds)", "own seeds",
                                        "ceiling", "disattenuated", "p", "verdict"], ag_rows))
        out["tables"].setdefault("dynamics_agreement", []).extend(csv_rows)
        out["head"].append(("p", f"Spearman ρ of per-example scores with {cfgs[ref_id]['label']} (different seeds) / the "
                                 "ceiling that seed noise allows = disattenuated agreement (1: the same examples are hard):"))
        out["head"].append(("table", ["model", *[n for _, n in head_scores]], head_table))
    head_lines = []
    for r in csv_rows:
        if r["model"] == cfgs[ref_id]["label"] or "Spearman" not in r["score"]:
            continue
        if r["score"].startswith(("forgetting events", "EL2N")):
            head_lines.append(f"{r['model']}, {r['score'].split(':')[0]}: ρ {r['vs_reference']:.3f} with the reference against a "
                              f"noise floor of {r['noise_floor']:.3f} and its own seeds' {r['own_seeds']:.3f}; disattenuated "
                              f"{r['disattenuated']:.2f}: **{_verdict(r['disattenuated'])}**.")
    return head_lines


def _cie_blocks(G, out, head_lines):
    """Compression-identified exemplars: test rows whose modal prediction differs from the reference's."""
    cfgs, order, ref_id, tests, name = G.cfgs, G.order, G.ref_id, G.tests, G.name
    # --- compression-identified exemplars (test rows)
    cie_rows = []
    ref_tests = tests[ref_id]
    if len(ref_tests) >= 2:
        def stack(tt):
            idx = sorted(set.intersection(*[set(t.index) for t in tt.values()]))
            return (np.stack([t.loc[idx, "prediction"].to_numpy() for t in tt.values()]),
                    next(iter(tt.values())).loc[idx, "label"].to_numpy(), idx)

        ref_pred, y_test, idx = stack(ref_tests)
        seeds_sorted = sorted(ref_tests, key=str)
        half = len(seeds_sorted) // 2
        a = np.stack([ref_tests[s].loc[idx, "prediction"].to_numpy() for s in seeds_sorted[:half]])
        b = np.stack([ref_tests[s].loc[idx, "prediction"].to_numpy() for s in seeds_sorted[half:]])
        floor_mask = compression_identified(a, b)
        cie_rows.append([f"{cfgs[ref_id]['label']} (seeds {len(seeds_sorted[:half])} vs {len(seeds_sorted[half:])}: noise "
                         "reference)", str(int(floor_mask.sum())), f"{100 * floor_mask.mean():.1f}", "–", "–"])
        for c in order:
            if c == ref_id or len(tests[c]) < 1:
                continue
            pred, _, idx_c = stack(tests[c])
            if idx_c != idx:
                continue
            mask = compression_identified(pred, ref_pred)
            mod_m, mod_r = modal_prediction(pred), modal_prediction(ref_pred)
            acc_m = float(np.mean(mod_m[mask] == y_test[mask])) if mask.any() else math.nan
            acc_r = float(np.mean(mod_r[mask] == y_test[mask])) if mask.any() else math.nan
            cie_rows.append([cfgs[c]["label"], str(int(mask.sum())), f"{100 * mask.mean():.1f}",
                             "–" if math.isnan(acc_m) else f"{acc_m:.3f}", "–" if math.isnan(acc_r) else f"{acc_r:.3f}"])
            head_lines.append(f"Compression-identified exemplars of {cfgs[c]['label']}: {int(mask.sum())} of {mask.size} test rows "
                              f"({100 * mask.mean():.1f} %) get a different modal prediction than {cfgs[ref_id]['label']}'s "
                              f"(two halves of the reference's own seeds disagree on {int(floor_mask.sum())})"
                              + (f"; on them the model is right on {acc_m:.0%}, the reference on {acc_r:.0%}." if mask.any() else "."))
        out["detail"].append(("h", 3, f"{name}: compression-identified exemplars (test rows; modal prediction over seeds)"))
        out["detail"].append(("table", ["model", "rows", "% of test rows", "model accuracy on them",
                                        "reference accuracy on them"], cie_rows))


def _topology_blocks(G, out, head_lines):
    """Forgetting caused by topology updates (drop/grow steps)."""
    cfgs, order, stats, name, metrics, n_train = G.cfgs, G.order, G.stats, G.name, G.metrics, G.n_train
    # --- topology updates
    topo_rows = []
    for c in order:
        ms = [metrics[key] for key in cfgs[c]["runs"].values() if key in metrics and "topology_updates" in metrics[key]]
        if not ms:
            continue
        per_update = [m["topology_forgotten_by_updates"] / m["topology_updates"] for m in ms if m["topology_updates"]]
        knocked = [100 * float(np.mean(st["topology_forgetting"].to_numpy() > 0)) for st in stats[c].values()]
        topo_rows.append([cfgs[c]["label"], str(len(ms)), ci_text([m["topology_updates"] for m in ms], 1), ci_text(per_update, 1),
                          ci_text([m["topology_forgotten_by_updates"] for m in ms], 1),
                          ci_text([nan_none(m.get("topology_forgotten_between_evaluations")) or math.nan for m in ms], 1),
                          ci_text([nan_none(m.get("topology_ratio")) or math.nan for m in ms], 2),
                          ci_text([100 * m["topology_accuracy_drop"] for m in ms], 2), ci_text(knocked, 1)])
        share = mean_of(per_update) / max(n_train, 1)
        head_lines.append(
            f"Topology updates of {cfgs[c]['label']}: each drop/grow step makes {mean_of(per_update):.1f} training rows "
            f"({100 * share:.1f} %) go from right to wrong at once; over the run that is "
            f"{mean_of([m['topology_forgotten_by_updates'] for m in ms]):.0f} forgetting events from updates against "
            f"{mean_of([nan_none(m.get('topology_forgotten_between_evaluations')) or math.nan for m in ms]):.0f} between "
            f"consecutive evaluations (ratio {mean_of([nan_none(m.get('topology_ratio')) or math.nan for m in ms]):.2f}; above 1 "
            f"means the next epoch relearns most of them); training accuracy drops by "
            f"{100 * mean_of([m['topology_accuracy_drop'] for m in ms]):.2f} points per update.")
    if topo_rows:
        out["detail"].append(("h", 3, f"{name}: forgetting caused by topology updates (mean ± 95 % CI over seeds)"))
        out["detail"].append(("table", ["model", "seeds", "updates", "rows forgotten per update", "forgotten by updates (total)",
                                        "forgotten between evaluations", "ratio", "train-accuracy drop per update (points)",
                                        "rows ever knocked out %"], topo_rows))


def _dynamics_plots(stats, cfgs, order, out_dir, stem, noise):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    files = []
    shown = [c for c in order if stats[c]]
    if not shown:
        return files
    # forgetting histograms: share of training rows (mean over seeds) per forgetting count
    cap = 8
    fig, axes = plt.subplots(1, len(shown), figsize=(3.6 * len(shown), 3.2), squeeze=False, sharey=True)
    for ax, c in zip(axes[0], shown):
        bins = np.arange(cap + 2)
        clean, flipped = [], []
        for st in stats[c].values():
            f = np.minimum(np.nan_to_num(st["forgetting_events"].to_numpy(), nan=0), cap).astype(int)
            f = np.where(st["never_learned"].to_numpy() == 1, cap + 1, f)
            n = len(st)
            nz = st["noisy"].to_numpy()
            clean.append(np.bincount(f[~nz], minlength=cap + 2) / n)
            flipped.append(np.bincount(f[nz], minlength=cap + 2) / n)
        clean, flipped = np.mean(clean, axis=0), np.mean(flipped, axis=0)
        ax.bar(bins, clean, color="C0", label="clean label")
        if noise:
            ax.bar(bins, flipped, bottom=clean, color="C3", label="flipped label")
        ax.set_xticks(bins)
        ax.set_xticklabels([*map(str, range(cap)), f"{cap}+", "never"], fontsize=7)
        ax.set_title(cfgs[c]["label"], fontsize=9)
        ax.set_xlabel("forgetting events")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, axis="y")
    axes[0, 0].set_ylabel("share of training rows (mean over seeds)")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    path = fig_dir / f"{stem}_forgetting_hist.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    files.append((path, "forgetting events per training row, per model (log scale; never learned at the right)"))
    # data maps: per-example mean over seeds of confidence and variability, coloured by correctness
    fig, axes = plt.subplots(1, len(shown), figsize=(3.8 * len(shown), 3.6), squeeze=False, sharex=True, sharey=True)
    sc = None
    for ax, c in zip(axes[0], shown):
        frames = list(stats[c].values())
        base = frames[0]
        conf = np.nanmean(np.stack([f.reindex(base.index)["confidence"].to_numpy() for f in frames]), axis=0)
        var = np.nanmean(np.stack([f.reindex(base.index)["variability"].to_numpy() for f in frames]), axis=0)
        corr = np.nanmean(np.stack([f.reindex(base.index)["correctness"].to_numpy() for f in frames]), axis=0)
        nz = base["noisy"].to_numpy()
        sc = ax.scatter(var[~nz], conf[~nz], c=corr[~nz], cmap="viridis", vmin=0, vmax=1, s=5, alpha=0.6, linewidths=0)
        if nz.any():
            ax.scatter(var[nz], conf[nz], marker="x", color="C3", s=9, linewidths=0.6, label="flipped label")
            ax.legend(fontsize=7, loc="upper right")
        ax.set_title(cfgs[c]["label"], fontsize=9)
        ax.set_xlabel("variability")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("confidence")
    if sc is not None:
        fig.colorbar(sc, ax=axes[0, -1], label="correctness")
    path = fig_dir / f"{stem}_data_map.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    files.append((path, "data maps: confidence vs variability per training row (mean over seeds), colour = correctness"))
    return files


# ---------------------------------------------------------------------- subsets
def subset_sections(frame, store, experiment, out_dir, plots, out):
    """The data-subset sections: per grid point, accuracy per strategy and fraction next to all rows,
    flipped labels kept, training FLOPs against the dense model on all rows, the best strategies; plots."""
    sub = store.table("subsets", experiment)
    if sub.empty:
        return
    acc = dict(zip(frame["run_key"], frame["accuracy"].astype(float)))
    flops = dict(zip(frame["run_key"], frame["flops_train"].astype(float)))
    sub["accuracy"] = [acc.get(k, math.nan) for k in sub["run_key"]]
    sub["flops_train"] = [flops.get(k, math.nan) for k in sub["run_key"]]
    fit = dict(zip(frame["run_key"], frame["fit_time_s"].astype(float))) if "fit_time_s" in frame else {}
    sub["fit_time_s"] = [fit.get(k, math.nan) for k in sub["run_key"]]
    sub["cfg"] = [cfg_id(m, nan_none(s), nan_none(e)) for m, s, e in zip(sub["model"], sub["sparsity"], sub["epsilon"])]
    sub["label"] = [cfg_label(m, nan_none(s), nan_none(e)) for m, s, e in zip(sub["model"], sub["sparsity"], sub["epsilon"])]
    grid = frame[frame["kind"] == "grid"].copy()
    grid["cfg"] = [cfg_id(m, nan_none(s), nan_none(e)) for m, s, e in zip(grid["model"], grid["sparsity"], grid["epsilon"])]
    out["head"].append(("h", 2, "Data subsets: training on the rows the statistics pick"))
    out["detail"].append(("h", 2, "Details: data subsets"))
    rows_csv = []
    keys = ["experiment", "dataset", "mechanism", "rate", "representation"]
    for point, g in sub.groupby(keys, sort=True, dropna=False):
        exp, dataset, mechanism, rate, rep = point
        name = f"{dataset}" + (f", {mechanism} {rate:g}" if rate else "") + f", {rep} ({exp})"
        gp = grid[(grid["experiment"] == exp) & (grid["dataset"] == dataset) & (grid["mechanism"] == mechanism)
                  & (grid["rate"] == rate) & (grid["representation"] == rep)]
        dense_full = gp[gp["model"] == "dense"]
        dense_acc = dict(zip(dense_full["seed"], dense_full["accuracy"].astype(float)))
        dense_fit = (dict(zip(dense_full["seed"], dense_full["fit_time_s"].astype(float)))
                     if "fit_time_s" in dense_full else {})
        present = set(g["strategy"])
        strategies = [s for s in STRATEGIES if s in present] + sorted(present - set(STRATEGIES))
        fractions = sorted(g["fraction"].unique())
        cfgs = sorted(g["cfg"].unique(), key=lambda c: (model_order(c.split("|")[0]), c))
        labels = dict(zip(g["cfg"], g["label"]))
        stats_from = g["stats_from"].iloc[0]
        out["detail"].append(("h", 3, f"{name}: test accuracy on subsets chosen from {cfg_label(stats_from, None, None)}'s statistics "
                                      "(mean ± 95 % CI over seeds)"))
        table = []
        for c in cfgs:
            full = gp[gp["cfg"] == c]["accuracy"].astype(float).tolist()
            for s in strategies:
                cells = []
                for f in fractions:
                    vals = g[(g["cfg"] == c) & (g["strategy"] == s) & (g["fraction"] == f)]["accuracy"].tolist()
                    cells.append(ci_text(vals))
                    rows_csv.append({"experiment": exp, "dataset": dataset, "config": labels[c], "strategy": s, "fraction": f,
                                     "accuracy": mean_of(vals), "n": len(vals)})
                table.append([labels[c], s, *cells, ci_text(full)])
        out["detail"].append(("table", ["model", "strategy", *[f"{f:g} of rows" for f in fractions], "all rows"], table))
        if (g["noisy_kept"].fillna(0) > 0).any():
            ntable = []
            for s in strategies:
                cells = []
                for f in fractions:
                    at = g[(g["strategy"] == s) & (g["fraction"] == f)]
                    cells.append(f"{100 * float((at['noisy_kept'] / at['n_subset']).mean()):.1f}")
                ntable.append([s, *cells])
            out["detail"].append(("p", "Share of flipped labels among the kept rows, % (the same rows for every trained model):"))
            out["detail"].append(("table", ["strategy", *[f"{f:g} of rows" for f in fractions]], ntable))
        # FLOPs
        ftable = []
        for c in cfgs:
            cells = []
            for f in fractions:
                vals = g[(g["cfg"] == c) & (g["fraction"] == f)]["flops_ratio"].astype(float).tolist()
                cells.append(f"{mean_of(vals):.3g}")
            full = gp[gp["cfg"] == c]
            ratio_full = (full["flops_train"].astype(float).mean() / dense_full["flops_train"].astype(float).mean()
                          if len(dense_full) and len(full) else math.nan)
            ftable.append([labels[c], *cells, "–" if math.isnan(ratio_full) else f"{ratio_full:.3g}"])
        out["detail"].append(("p", "Training FLOPs relative to the dense model on all rows (data pruning and weight sparsity "
                                   f"together; source: {g['dense_full_source'].iloc[0]}):"))
        out["detail"].append(("table", ["model", *[f"{f:g} of rows" for f in fractions], "all rows"], ftable))
        lines = _subset_headline(g, cfgs, labels, fractions, dense_acc, dense_fit)
        out["head"].append(("h", 3, name))
        out["head"].append(("ul", lines))
        if plots:
            path = _subset_plot(g, gp, strategies, fractions, cfgs, labels, dense_full, out_dir, slug(exp, dataset, mechanism, rate, rep, "subsets"))
            if path is not None:
                out["detail"].append(("img", path.relative_to(out_dir).as_posix(),
                                      "test accuracy vs share of training rows kept, per strategy (1.0: the model on all rows; "
                                      "dotted: dense MLP on all rows)"))
    out["tables"]["subsets_summary"] = rows_csv


def _subset_headline(g, cfgs, labels, fractions, dense_acc, dense_fit) -> list[str]:
    """Per model and fraction: the best strategy, against random and against the dense MLP on all rows
    (paired by seed), its training-FLOP ratio and fit-time ratio."""
    lines = []
    for c in cfgs:
        for f in fractions:
            at = g[(g["cfg"] == c) & (g["fraction"] == f)]
            means = at.groupby("strategy")["accuracy"].mean()
            if means.empty:
                continue
            best = means.idxmax()
            b = dict(zip(at[at["strategy"] == best]["seed"], at[at["strategy"] == best]["accuracy"]))
            text = f"{labels[c]}, {f:g} of the rows: best strategy {best} ({means[best]:.3f})"
            if "random" in means and best != "random":
                rnd = dict(zip(at[at["strategy"] == "random"]["seed"], at[at["strategy"] == "random"]["accuracy"]))
                common = sorted(set(b) & set(rnd))
                cmp = paired([b[s] for s in common], [rnd[s] for s in common])
                text += (f", vs random {cmp.diff:+.3f} ({'significant' if cmp.significant else 'not significant'}, "
                         f"{p_text(cmp.p_ttest)})")
            if dense_acc:
                common = sorted(set(b) & set(dense_acc))
                cmp = paired([b[s] for s in common], [dense_acc[s] for s in common])
                verdict = ("significantly worse" if cmp.significant and cmp.diff < 0 else
                           "significantly better" if cmp.significant else "not significantly different")
                text += (f"; vs the dense MLP on all rows {cmp.diff:+.3f} ({verdict}, {p_text(cmp.p_ttest)})")
            ratio = at["flops_ratio"].astype(float).mean()
            text += f"; training FLOPs {ratio:.3g}× the dense model's on all rows ({1 - ratio:.0%} saved)"
            if dense_fit:
                # the best strategy's fit times against the dense MLP's on all rows, paired by seed
                bt = at[at["strategy"] == best]
                t = dict(zip(bt["seed"], bt["fit_time_s"].astype(float)))
                common = sorted(set(t) & set(dense_fit))
                tr = ratio_ci([t[s] for s in common], [dense_fit[s] for s in common])
                if tr.finite:
                    text += f"; fit time {tr.ratio:.3g}× the dense MLP's on all rows"
                    if np.isfinite(tr.low):
                        text += f" [95 % CI {tr.low:.3g}, {tr.high:.3g}]"
                    text += {"higher": ", slower", "lower": ", faster"}.get(tr.direction, ", no clear difference")
            lines.append(text + ".")
    return lines


def _subset_plot(g, gp, strategies, fractions, cfgs, labels, dense_full, out_dir, stem):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    ncols = min(4, len(strategies))
    nrows = math.ceil(len(strategies) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.0 * nrows), squeeze=False, sharey=True)
    handles = {}
    for ax, s in zip(axes.ravel(), strategies):
        for c in cfgs:
            xs, ys, es = [], [], []
            for f in fractions:
                m, h, _ = mean_ci(g[(g["cfg"] == c) & (g["strategy"] == s) & (g["fraction"] == f)]["accuracy"].tolist())
                xs.append(f), ys.append(m), es.append(0 if not np.isfinite(h) else h)
            full = gp[gp["cfg"] == c]["accuracy"].astype(float).tolist()
            if full:
                m, h, _ = mean_ci(full)
                xs.append(1.0), ys.append(m), es.append(0 if not np.isfinite(h) else h)
            handles[labels[c]] = ax.errorbar(xs, ys, yerr=es, capsize=2, marker="o", ms=3,
                                             color=f"C{model_order(c.split('|')[0]) % 10}")
        if len(dense_full):
            ax.axhline(float(dense_full["accuracy"].astype(float).mean()), color="k", ls=":", lw=1)
        ax.set_title(s, fontsize=9)
        ax.set_xlabel("share of training rows kept", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(strategies):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy")
    fig.legend(list(handles.values()), list(handles), fontsize=7, loc="lower center", ncol=min(4, len(handles)))
    fig.tight_layout(rect=(0, 0.08 if nrows == 1 else 0.05, 1, 1))
    path = fig_dir / f"{stem}_accuracy_vs_fraction.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


