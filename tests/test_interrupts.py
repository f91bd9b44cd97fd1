"""Ctrl-C at the worst instant: a SIGINT delivered inside a step, right after the optimizer's update (before
the loop counts the step), saves the last complete step, and the resumed run ends bit-identical to one that
was never interrupted. The signal is sent from inside the step itself, so the instant is the same every run."""
import os
import signal

import pytest
import torch

from conftest import tiny_gpt
from mingpt import Trainer, TrainerConfig
from mingpt.data import CharDataset
from mingpt.utils import set_seed

TEXT = "to be, or not to be, that is the question: whether 'tis nobler in the mind to suffer " * 6
STEPS, AT = 10, 4  # the interrupt lands inside step AT + 1


def make(ckpt_dir=None, resume_from=None):
    set_seed(0)
    ds = CharDataset(TEXT, block_size=8)
    model = tiny_gpt(vocab_size=ds.vocab_size, block_size=8)
    for m in model.modules():  # dropout on: the RNG states must be restored exactly too
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.1
    cfg = TrainerConfig(batch_size=8, grad_accum_steps=2, learning_rate=3e-3, max_iters=STEPS, device="cpu",
                        progress=False, ckpt_dir=ckpt_dir, checkpoint_interval=3, resume_from=resume_from)
    return Trainer(model, ds, None, cfg)


def interrupt_after_the_update(trainer, how):
    update = trainer.optimizer_step

    def optimizer_step():
        update()
        if trainer.iter_num == AT:  # step AT + 1 has updated the weights; the loop has not counted it yet
            how()

    trainer.optimizer_step = optimizer_step


def weights(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


@pytest.fixture  # function-scoped, so that it runs after conftest's one-thread setting, like the tests
def uninterrupted():
    t = make()
    t.train()
    return weights(t)


def test_sigint_inside_a_step_saves_that_step_and_resumes_exactly(tmp_path, uninterrupted):
    t = make(ckpt_dir=str(tmp_path / "ck"))
    interrupt_after_the_update(t, lambda: os.kill(os.getpid(), signal.SIGINT))
    t.train()
    assert t.interrupted and t.iter_num == AT + 1 and t.last_checkpoint.name == f"step_{AT + 1:08d}"
    assert len(t.history["iter"]) == AT + 1 and t.batch_in_epoch == 2 * (AT + 1)
    resumed = make(ckpt_dir=str(tmp_path / "ck"), resume_from=str(tmp_path / "ck"))
    assert resumed.iter_num == AT + 1
    resumed.train()
    assert resumed.iter_num == STEPS
    assert all(torch.equal(resumed.model.state_dict()[k], w) for k, w in uninterrupted.items())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is given back


def test_an_interrupt_that_is_not_held_back_saves_a_mixed_checkpoint(tmp_path, uninterrupted):
    """What the hold-back prevents (and so what the test above would catch): a KeyboardInterrupt raised at
    that instant saves step AT + 1's weights under step AT's number, and the resumed run differs."""
    def raise_now():
        raise KeyboardInterrupt

    t = make(ckpt_dir=str(tmp_path / "ck"))
    interrupt_after_the_update(t, raise_now)
    t.train()
    assert t.interrupted and t.iter_num == AT and t.last_checkpoint.name == f"step_{AT:08d}"
    resumed = make(ckpt_dir=str(tmp_path / "ck"), resume_from=str(tmp_path / "ck"))
    resumed.train()
    assert not all(torch.equal(resumed.model.state_dict()[k], w) for k, w in uninterrupted.items())


def test_sigint_between_steps_stops_at_once(tmp_path):
    t = make(ckpt_dir=str(tmp_path / "ck"))
    t.add_callback("on_batch_end", lambda tr: os.kill(os.getpid(), signal.SIGINT) if tr.iter_num == 2 else None)
    t.train()
    assert t.interrupted and t.iter_num == 2 and t.last_checkpoint.name == "step_00000002"
