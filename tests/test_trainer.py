"""The trainer: schedule, stopping, evaluation, callbacks, checkpoints, clear errors."""
import math

import pytest
import torch

from mingpt.data import CharDataset
from mingpt.trainer import Trainer, TrainerConfig
from conftest import tiny_gpt

TEXT = "the quick brown fox jumps over the lazy dog. " * 20


def make(tmp_path=None, **kw):
    ds = CharDataset(TEXT, block_size=8)
    model = tiny_gpt(vocab_size=ds.vocab_size, block_size=8)
    cfg = TrainerConfig(batch_size=16, learning_rate=3e-3, device="cpu", progress=False, **kw)
    return Trainer(model, ds, CharDataset(TEXT[:200], 8, chars=ds.chars), cfg)


def test_learning_rate_schedule():
    t = make(lr_decay=True, warmup_tokens=100, final_tokens=1100)
    lr = t.config.learning_rate
    assert t.lr_at(0) == 0 and math.isclose(t.lr_at(50), lr / 2)
    assert math.isclose(t.lr_at(100), lr) and math.isclose(t.lr_at(600), lr / 2)
    assert math.isclose(t.lr_at(1100), lr * 0.1) and math.isclose(t.lr_at(10_000), lr * 0.1)
    assert make().lr_at(123) == lr


def test_max_iters_eval_and_loss_goes_down():
    t = make(max_iters=60, eval_interval=20, eval_iters=2)
    seen = []
    t.add_callback("on_eval_end", lambda tr: seen.append(tr.iter_num))
    h = t.train()
    assert t.iter_num == 60 and h["iter"][-1] == 60 and len(h["train_loss"]) == 60
    assert seen == [20, 40, 60] and h["eval_iter"] == [20, 40, 60]
    assert h["test_loss"][-1] < h["test_loss"][0] < math.log(t.train_dataset.vocab_size) + 0.5


def test_epochs_and_checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    t = make(max_epochs=2, ckpt_path=str(path))
    epochs = []
    t.add_callback("on_epoch_end", lambda tr: epochs.append(tr.epoch))
    t.train()
    assert epochs == [1, 2] and t.iter_num == 2 * math.ceil(len(t.train_dataset) / 16)
    assert path.exists() and not (tmp_path / "model.pt.tmp").exists()
    fresh = tiny_gpt(vocab_size=t.train_dataset.vocab_size, block_size=8)
    fresh.load_state_dict(torch.load(path, weights_only=True))
    x = torch.randint(0, t.train_dataset.vocab_size, (1, 8))
    torch.testing.assert_close(fresh(x)[0], t.model.eval()(x)[0])


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        make(ckpt_path=str(tmp_path / "nope" / "m.pt"))
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        TrainerConfig(batch_size=0)
    with pytest.raises(ValueError, match="unknown event"):
        make().add_callback("on_step", print)
    with pytest.raises(ValueError, match="empty"):
        Trainer(tiny_gpt(), [], None, TrainerConfig(device="cpu"))


def test_request_stop_from_a_callback():
    t = make(max_iters=50, eval_interval=100)
    t.add_callback("on_batch_end", lambda tr: tr.request_stop() if tr.iter_num == 7 else None)
    ended = []
    t.add_callback("on_train_end", lambda tr: ended.append(tr.iter_num))
    t.train()
    assert t.iter_num == 7 and ended == [7]


def test_bf16_on_cpu_trains_and_the_loss_falls():
    t = make(max_iters=40, eval_interval=40, eval_iters=2, precision="bf16")
    assert t.precision == "bf16" and not t.scaler.is_enabled()
    h = t.train()
    first, last = sum(h["train_loss"][:5]) / 5, sum(h["train_loss"][-5:]) / 5
    assert last < first - 0.3, (first, last)
    assert all(p.dtype == torch.float32 for p in t.model.parameters())  # autocast keeps fp32 master weights


def test_precision_names_and_devices():
    from mingpt.trainer import autocast_context, resolve_precision

    assert resolve_precision("auto", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="unknown precision 'fp8'; expected one of"):
        resolve_precision("fp8", "cpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainerConfig(precision="half")
    with pytest.raises(ValueError, match="'fp16' is for GPUs.*on a CPU use 'bf16' or 'fp32'"):
        make(precision="fp16")  # documented: fp16 needs a GPU; the Trainer refuses before any work
    with autocast_context("cpu", "bf16"):
        assert torch.nn.Linear(2, 2)(torch.ones(1, 2)).dtype == torch.bfloat16
    with autocast_context("cpu", "fp32"):
        assert torch.nn.Linear(2, 2)(torch.ones(1, 2)).dtype == torch.float32


def test_compile_falls_back_to_eager_when_the_first_step_fails(monkeypatch):
    class Broken(torch.nn.Module):  # what torch.compile returns: fails when first called
        def forward(self, *args):
            raise RuntimeError("backend exploded")

    monkeypatch.setattr(torch, "compile", lambda model, **kw: Broken())
    t = make(max_iters=5, eval_interval=5, eval_iters=1, compile=True)
    with pytest.warns(UserWarning, match="torch.compile failed at the first step.*backend exploded.*without compile"):
        t.train()
    assert t.iter_num == 5 and t._net is t.model


def test_compile_unavailable_warns_and_trains(monkeypatch):
    def refuse(model, **kw):
        raise RuntimeError("Python 3.99 is not supported")

    monkeypatch.setattr(torch, "compile", refuse)
    with pytest.warns(UserWarning, match="torch.compile failed .*not supported.*training without compile"):
        t = make(max_iters=3, eval_interval=3, eval_iters=1, compile=True)
    t.train()
    assert t.iter_num == 3
