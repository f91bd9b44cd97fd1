"""The CUDA branches: KV cache, bf16 and fp16 training, resume with a GradScaler, compile, the benchmark.

Skipped without a CUDA GPU (CI has none); run on a GPU machine with `python -m pytest tests/test_gpu.py -v`.
"""
import os
import warnings

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # lets cuBLAS run deterministically (resume test)

import pytest
import torch

from conftest import tiny_gpt
from mingpt.data import CharDataset
from mingpt.kvcache import KVCache, decode_step, forward_cached
from mingpt.model import GPT, GPTConfig
from mingpt import Trainer, TrainerConfig
from mingpt.utils import generate as naive_generate
from mingpt.utils import set_seed

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TEXT = "to be, or not to be, that is the question: whether 'tis nobler in the mind to suffer. " * 8


def cuda_gpt(dtype=torch.float32, bias=True):
    """conftest's tiny GPT, wider and with a longer block, on the GPU in eval mode."""
    return tiny_gpt(block_size=16, n_embd=32, bias=bias).to("cuda", dtype)


def test_cached_greedy_equals_naive_on_cuda_float64():
    model = cuda_gpt(dtype=torch.float64)
    prompt = torch.randint(0, 11, (2, 3), device="cuda")
    cached = model.generate(prompt, 40, use_cache=True)  # crosses block_size 16
    naive = naive_generate(model, prompt, 40)
    assert cached.device.type == "cuda" and torch.equal(cached, naive)


@pytest.mark.parametrize("bias", [True, False])
def test_cached_steps_match_forward_on_cuda_float32(bias):
    model = cuda_gpt(bias=bias)
    idx = torch.randint(0, 11, (3, 12), device="cuda")
    by_forward, by_decode = KVCache(model.config, 3, "cuda"), KVCache(model.config, 3, "cuda")
    with torch.no_grad():
        full = model(idx)[0]  # (B, T, V)
        forward_cached(model, idx[:, :8], by_forward), forward_cached(model, idx[:, :8], by_decode)
        for t in range(8, 12):  # forward_cached one token at a time, and decode_step (the fast path), vs forward
            for logits in (forward_cached(model, idx[:, t:t + 1], by_forward), decode_step(model, idx[:, t], by_decode)):
                err = (full[:, t] - logits).abs().max().item()
                assert err < 1e-4, (t, err)


def train(precision, steps=30, compile=False, **extra):
    set_seed(1)
    train_set = CharDataset(TEXT, block_size=16)
    model = GPT(GPTConfig(train_set.vocab_size, 16, n_layer=2, n_head=2, n_embd=64, embd_pdrop=0.1,
                          resid_pdrop=0.1, attn_pdrop=0.1))
    config = TrainerConfig(batch_size=16, learning_rate=3e-3, max_iters=steps, device="cuda", progress=False,
                           precision=precision, compile=compile, **extra)
    trainer = Trainer(model, train_set, None, config)
    trainer.train()
    return trainer


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_each_precision_trains_on_cuda(precision):
    trainer = train(precision)
    losses = trainer.history["train_loss"]
    assert trainer.precision == precision
    assert trainer.scaler.is_enabled() == (precision == "fp16")
    assert all(torch.isfinite(torch.tensor(losses))), losses
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5, losses


def test_bf16_and_fp16_follow_fp32_on_cuda():
    fp32 = train("fp32").history["train_loss"]
    for precision in ("bf16", "fp16"):
        other = train(precision).history["train_loss"]
        gap = max(abs(a - b) for a, b in zip(fp32[-10:], other[-10:]))
        assert gap < 0.15, (precision, gap)


def test_fp16_resume_on_cuda_is_exact(tmp_path):
    torch.use_deterministic_algorithms(True)
    try:
        whole = train("fp16", steps=20)
        train("fp16", steps=20, ckpt_dir=str(tmp_path), checkpoint_interval=10, keep_checkpoints=5)
        resumed = train("fp16", steps=20, resume_from=str(tmp_path / "step_00000010"))
    finally:
        torch.use_deterministic_algorithms(False)
    assert resumed.scaler.get_scale() == whole.scaler.get_scale()
    assert resumed.history["train_loss"] == whole.history["train_loss"]
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def test_compile_on_cuda_trains_like_eager():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = train("bf16", steps=10, compile=True).history["train_loss"]
    fallbacks = [str(w.message) for w in caught if "without compile" in str(w.message)]
    assert fallbacks == []  # the Trainer warns "... training without compile" when it falls back to eager
    eager = train("bf16", steps=10).history["train_loss"]
    assert max(abs(a - b) for a, b in zip(compiled, eager)) < 0.05, (compiled, eager)


def test_benchmark_quick_on_cuda(capsys):
    from mingpt.benchmark import main

    assert main(["--quick", "--device", "cuda"]) == 0
    out = capsys.readouterr().out
    assert "cuda (" in out and "training bf16" in out and "KV cache" in out, out
