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
