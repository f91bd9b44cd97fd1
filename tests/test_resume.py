"""Exact resume: a real run, SIGKILLed at a random step and resumed, ends bit-identical to an uninterrupted one."""
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mingpt.checkpoint import latest_checkpoint, weights_from_bytes

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "train_tiny.py"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def run(out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(out), *args], env=ENV, capture_output=True, text=True,
                          timeout=120, check=True)


@pytest.mark.parametrize("variant", [[], ["--lora"]], ids=["full", "lora"])
def test_sigkill_and_resume_is_bit_identical(tmp_path, variant):
    run(tmp_path / "whole", *variant)
    kill_at = random.SystemRandom().randint(6, 36)  # after the first checkpoint (step 4), before the end (40)
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(tmp_path / "killed"), "--delay", "0.05", *variant], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seen = 0
    for line in proc.stdout:
        if line.startswith("step"):
            seen = int(line.split()[1])
            if seen >= kill_at:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the run ended on its own before step {kill_at}"
    assert not (tmp_path / "killed" / "final.safetensors").exists()
    resumed_from = latest_checkpoint(tmp_path / "killed" / "ckpt")
    assert resumed_from is not None and resumed_from.name <= f"step_{seen:08d}"
    out = run(tmp_path / "killed", "--resume", *variant).stdout
    first_step = int(out.split()[1])
    assert first_step == int(resumed_from.name.split("_")[1]) + 1, out[:200]

    whole = weights_from_bytes((tmp_path / "whole" / "final.safetensors").read_bytes())
    resumed = weights_from_bytes((tmp_path / "killed" / "final.safetensors").read_bytes())
    assert whole.keys() == resumed.keys()
    different = [k for k in whole if not torch.equal(whole[k], resumed[k])]
    assert not different, f"killed at step {seen}, resumed from {resumed_from.name}: {different} differ"
