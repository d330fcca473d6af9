"""Training runs on the thread count OMP_NUM_THREADS asks for, even after Numba's OpenMP pool has run (issue 18)."""

import json
import os
import subprocess
import sys

import pytest

from mer.train.threads import requested_threads

SCRIPT = r"""
import json, numpy as np, torch
from mer.pipeline.temporal.rank_pool import rank_pool
import mer.train.experiment as experiment
from mer.train.trainer import TrainConfig
rank_pool(np.ones((4, 8, 8), np.uint8), np.ones(4))  # MESTI's pooling: Numba's OpenMP pool starts here
after_pool = torch.get_num_threads()
if after_pool == 1:  # the pool left the count alone here (one usable core, another threading layer): move it
    torch.set_num_threads(2)
before_training = torch.get_num_threads()
seen = set()
meta = __import__("pandas").DataFrame({"dataset": ["d"] * 8, "subject": ["a", "a", "b", "b"] * 2,
                                       "clip_id": [f"c{i}" for i in range(8)], "label": ["x", "y"] * 4})
X = np.random.default_rng(0).random((8, 3, 16, 16)).astype("float32")
res = experiment.run_experiment(X, meta, "loso", "meganet", dict(blocks=2, widths=(8, 8), stem_channels=8),
                                TrainConfig(epochs=1, batch_size=4, device="cpu"), None, ["x", "y"],
                                progress=lambda fold, epoch, loss: seen.add(torch.get_num_threads()))
print(json.dumps({"after_pool": after_pool, "before": before_training, "during": sorted(seen),
                  "recorded": res.config["cpu_threads"], "after": torch.get_num_threads()}))
"""


def run_script(env_threads: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": env_threads}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_training_after_mesti_pooling_uses_the_requested_thread_count():
    seen = run_script("1")
    print(seen)  # after_pool is 2 on this machine: the pool itself moves torch off the request
    assert seen["before"] > 1  # torch is off the request when training starts: the case this guards against
    assert seen["during"] == [1]
    assert seen["recorded"] == 1
    assert seen["after"] == seen["before"]  # restored after training


@pytest.mark.parametrize(("value", "expected"), [("3", 3), (" 2 ", 2), ("0", None), ("two", None), ("", None)])
def test_requested_threads_reads_omp_num_threads(monkeypatch, value, expected):
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert requested_threads() == expected
