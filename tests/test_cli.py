"""The command line: run / report / results / demo, exit codes and error messages."""

import json
import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from dualsparse.cli import main

CONFIG = """
[experiment]
name = "cli"
seeds = 2

[data]
datasets = ["breast_cancer"]

[missingness]
mechanisms = ["mcar"]
rates = [0.0, 0.3]

[representations]
names = ["observed"]

[models]
names = ["dense", "set", "logreg"]
sparsities = [0.8]

[mlp]
hidden_layer_sizes = [8]
max_epochs = 2
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One tiny sweep run through the CLI, shared by the tests that read its store."""
    d = tmp_path_factory.mktemp("cli")
    (d / "c.toml").write_text(textwrap.dedent(CONFIG))
    store = d / "r.sqlite"
    assert main(["run", str(d / "c.toml"), "--store", str(store), "--quiet"]) == 0
    return d, store


def test_run_stores_every_run_and_resumes(swept, capsys):
    d, store = swept
    n = sqlite3.connect(store).execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    assert n == 12  # (rate 0 + rate 0.3) x (dense, set, logreg) x 2 seeds
    assert main(["run", str(d / "c.toml"), "--store", str(store), "--quiet"]) == 0
    assert "12 runs: 12 already in the store, 0 finished now" in capsys.readouterr().out


def test_dry_run_counts_and_runs_nothing(tmp_path, capsys):
    (tmp_path / "c.toml").write_text(textwrap.dedent(CONFIG))
    assert main(["run", str(tmp_path / "c.toml"), "--store", str(tmp_path / "r.sqlite"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "runs            12" in out and "12 to run" in out
    assert not (tmp_path / "r.sqlite").exists()


def test_dry_run_on_existing_store_says_what_is_left(swept, capsys):
    d, store = swept
    assert main(["run", str(d / "c.toml"), "--store", str(store), "--dry-run"]) == 0
    assert "12 of 12 already in" in capsys.readouterr().out


def test_report_and_results(swept, tmp_path, capsys):
    _, store = swept
    assert main(["report", "--store", str(store), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Headline" in md and "Best sparse: SET MLP (observed, sparsity 0.8)" in md
    assert (tmp_path / "rep" / "report.html").exists()
    assert (tmp_path / "rep" / "figures" / "cli_breast_cancer_mcar_accuracy_vs_rate.png").exists()
    capsys.readouterr()
    assert main(["results", "--store", str(store), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("run_key,experiment,dataset") and len(lines) == 13
    assert main(["results", "--store", str(store), "--format", "parquet", "--out", str(tmp_path / "r.parquet")]) == 0
    frame = pd.read_parquet(tmp_path / "r.parquet")
    assert len(frame) == 12 and json.loads(frame["config"][0])["experiment"] == "cli"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "{d}/missing.toml"], "config file not found"),
        (["run", "{d}/bad.toml"], "unknown key 'max_epoch' in [mlp] (did you mean 'max_epochs'?)"),
        (["run", "{d}/c.toml", "--jobs", "0"], "--jobs must be >= 1"),
        (["report", "--store", "{d}/none.sqlite", "--out", "{d}/o"], "no results store"),
        (["results", "--store", "{d}/none.sqlite"], "no results store"),
    ],
)
def test_errors_exit_2_with_a_message(tmp_path, capsys, argv, message):
    (tmp_path / "c.toml").write_text(textwrap.dedent(CONFIG))
    (tmp_path / "bad.toml").write_text(textwrap.dedent(CONFIG).replace("max_epochs", "max_epoch"))
    argv = [a.format(d=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("dualsparse: error:") and message in err
    assert not (tmp_path / "dualsparse-results.sqlite").exists()


def test_parquet_needs_out(swept, capsys):
    _, store = swept
    assert main(["results", "--store", str(store), "--format", "parquet"]) == 2
    assert "--out" in capsys.readouterr().err


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as info:
        main(["run"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["results", "--format", "xlsx"])
    assert info.value.code == 2


def test_failed_runs_exit_1_and_are_retried(tmp_path, capsys):
    # 'observed' representation of the breast cancer data through an MLP whose learning rate makes
    # training diverge: the estimator raises, the run is recorded as failed, the exit code is 1
    text = textwrap.dedent(CONFIG).replace("max_epochs = 2", "max_epochs = 2\nlearning_rate = 1e30").replace(
        'names = ["dense", "set", "logreg"]', 'names = ["dense"]').replace("sparsities = [0.8]", "")
    (tmp_path / "c.toml").write_text(text)
    store = tmp_path / "r.sqlite"
    assert main(["run", str(tmp_path / "c.toml"), "--store", str(store), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "failed:" in err and "diverged" in err
    conn = sqlite3.connect(store)
    assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*), MIN(attempts) FROM failures").fetchone() == (4, 1)
    assert main(["run", str(tmp_path / "c.toml"), "--store", str(store), "--quiet"]) == 1
    assert conn.execute("SELECT MIN(attempts) FROM failures").fetchone()[0] == 2


def test_demo_still_works(capsys):
    assert main(["demo", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["algorithm", "accuracy", "train", "GFLOPs", "dense", "GFLOPs", "ratio"]
    assert [line.split()[0] for line in out.splitlines()[1:4]] == ["set", "static", "dense"]
    assert out.splitlines()[4] == "(each trained for the same 1 epoch, not to convergence; --epochs changes it)"


def _cli(*argv):
    """The command as a user runs it: a separate process (so that its stdout and stderr are real pipes)."""
    return [sys.executable, "-m", "dualsparse.cli", *map(str, argv)]


def test_results_into_a_closed_pipe_end_quietly(swept):
    # `dualsparse results --format csv | head -3`: the reader is gone before the CSV is written
    _, store = swept
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(_cli("results", "--store", store, "--format", "csv"), stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.stderr == ""  # no BrokenPipeError traceback, no "Exception ignored" at exit
    assert done.returncode in (0, 128 + signal.SIGPIPE, -signal.SIGPIPE)


def test_results_piped_into_head_gives_its_lines(swept):
    _, store = swept
    shell = f"set -o pipefail; {shlex.join(_cli('results', '--store', store, '--format', 'csv'))} | head -3"
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=120)
    assert done.stderr == "" and len(done.stdout.splitlines()) == 3
    assert done.returncode in (0, 128 + signal.SIGPIPE)


def test_progress_off_a_terminal_is_plain_lines(tmp_path):
    # stderr a pipe (a log file, CI): no carriage-return redraws, no per-epoch bar, a plain line per report
    text = textwrap.dedent(CONFIG).replace('names = ["dense", "set", "logreg"]', 'names = ["dense"]').replace(
        "rates = [0.0, 0.3]", "rates = [0.0]").replace("sparsities = [0.8]", "")
    (tmp_path / "c.toml").write_text(text)
    done = subprocess.run(_cli("run", tmp_path / "c.toml", "--store", tmp_path / "r.sqlite"), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and "epochs" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith("cli: 0/2 runs, 00:00 elapsed, ~")
    assert re.fullmatch(r"cli: 2/2 runs, \d\d:\d\d elapsed, ~\S+ left, breast_cancer none 0 observed dense seed 1",
                        lines[-1])
    assert "2 runs: 0 already in the store, 2 finished now" in done.stdout
