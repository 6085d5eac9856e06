"""A sweep killed with SIGKILL at an arbitrary moment resumes: nothing lost, redone or duplicated."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

from dualsparse.experiments import loads_config

CONFIG = """
[experiment]
name = "resume"
seeds = 6

[data]
datasets = ["breast_cancer"]

[missingness]
mechanisms = ["mcar"]
rates = [0.2]

[representations]
names = ["impute-mean"]

[models]
names = ["dense", "static"]
sparsities = [0.8]

[mlp]
hidden_layer_sizes = [32]
max_epochs = 40
"""


def rows(db):
    if not os.path.exists(db):
        return {}
    conn = sqlite3.connect(db, timeout=30)
    try:
        return {k: (f, w) for k, f, w in conn.execute("SELECT run_key, finished_at, wall_time_s FROM runs")}
    except sqlite3.OperationalError:  # table not created yet
        return {}
    finally:
        conn.close()


def test_kill_9_then_resume(tmp_path):
    cfg_path = tmp_path / "resume.toml"
    cfg_path.write_text(textwrap.dedent(CONFIG))
    expected = {r.key for r in loads_config(textwrap.dedent(CONFIG), default_name="resume").runs()}
    assert len(expected) == 12
    db = str(tmp_path / "results.sqlite")
    cmd = [sys.executable, "-m", "dualsparse.cli", "run", str(cfg_path), "--store", db, "--quiet"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while len(rows(db)) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "the sweep stored nothing in time"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = rows(db)
    assert 2 <= len(before) < len(expected), "the sweep was not interrupted"
    assert set(before) <= expected

    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"12 runs: {len(before)} already in the store, {12 - len(before)} finished now" in done.stdout
    after = rows(db)
    assert set(after) == expected  # none lost
    for key, value in before.items():  # none redone: the stored rows are untouched
        assert after[key] == value
    conn = sqlite3.connect(db)
    n, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT run_key) FROM runs").fetchone()
    assert n == distinct == 12  # none duplicated
    assert conn.execute("SELECT COUNT(*) FROM failures").fetchone()[0] == 0

