"""The benchmark (chapter 13): `python -m mingpt.benchmark --quick` prints one table of the expected rows.

Checks the tool's structure and its errors, never the speed of this machine."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mingpt.benchmark import format_table, main, run

ROOT = Path(__file__).resolve().parent.parent
# chapter 18's rows (mingpt.instruct): a second call's first tokens, gathered or kept; short answers against transformers
CHAT_ROWS = ["chat: first 2 tokens"] * 2 + ["chat: 5-token answer"] * 2 + ["chat: 20-token answer"] * 2


def test_quick_run_prints_one_table():
    out = subprocess.run([sys.executable, "-m", "mingpt.benchmark", "--quick", "--threads", "1"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("mingpt benchmark: cpu")
    assert lines[1].split()[:2] == ["measurement", "setting"] and set(lines[2]) <= {"-", " "}
    body = lines[3:]
    assert [re.split(r"\s{2,}", line)[0] for line in body] == [
        "matmul peak", "training fp32", "training fp32", "training MFU", "generation", "generation",
        *CHAT_ROWS, "generation, Llama recipe", "generation, Llama recipe"]  # chapters 18 and 16, by module name
    assert sum(line.rstrip().endswith("x") for line in body) == 6  # SDPA, the KV cache, 3 chat rows, GQA
    assert "weights kept with the model" in out.stdout and "transformers' generate" in out.stdout
    assert "multi-head, 2 kv heads" in out.stdout and "grouped-query, 1 kv head:" in out.stdout
    assert "KV cache" in out.stdout and "MFU" in out.stdout and "GFLOP/s" in out.stdout


def test_rows_and_table():
    rows = run(n_layer=1, n_head=1, n_embd=8, block_size=8, batch_size=2, train_steps=1, gen_block_size=16,
               gen_tokens=4, matmul_size=64, device="cpu", bf16=True)
    assert [r["what"] for r in rows] == ["matmul peak", "training fp32", "training fp32", "training MFU",
                                          "training bf16", "generation", "generation", *CHAT_ROWS,
                                          "generation, Llama recipe"]
    assert all(r["value"] > 0 for r in rows)
    assert [r["ratio"] is not None for r in rows] == [False, False, True, False, True, False, True,
                                                      False, True, False, True, False, True, False]
    table = format_table(rows).splitlines()
    assert len(table) == 2 + len(rows) and len({len(line.rstrip()) for line in table[:2]}) == 1  # header and rule align


@pytest.mark.parametrize("argv, message", [
    (["--n-layer", "0"], "--n-layer must be a positive int"),
    (["--gen-tokens", "600"], "must be less than --gen-block-size"),
    (["--n-embd", "100", "--n-head", "6"], "divisible by --n-head"),
])
def test_bad_flags(argv, message, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


def test_synchronize_waits_for_the_named_device_only(monkeypatch):
    import torch

    from mingpt.utils import synchronize

    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(str(device)))
    monkeypatch.setattr(torch.mps, "synchronize", lambda: calls.append("mps"))
    for device in ("cpu", "cuda", "mps", torch.device("cpu"), "cuda:1", torch.device("mps")):
        synchronize(device)
    assert calls == ["cuda", "mps", "cuda:1", "mps"]
