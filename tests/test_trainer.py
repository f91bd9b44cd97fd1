"""The trainer: schedule, stopping, evaluation, callbacks, checkpoints, clear errors."""
import math
import warnings

import pytest
import torch

from mingpt.data import CharDataset
from mingpt import Trainer, TrainerConfig
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
    from mingpt.fast import autocast_context, resolve_precision

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
    assert t.iter_num == 5 and t.net is t.model


def test_compile_unavailable_warns_and_trains(monkeypatch):
    def refuse(model, **kw):
        raise RuntimeError("Python 3.99 is not supported")

    monkeypatch.setattr(torch, "compile", refuse)
    with pytest.warns(UserWarning, match="torch.compile failed .*not supported.*training without compile"):
        t = make(max_iters=3, eval_interval=3, eval_iters=1, compile=True)
    t.train()
    assert t.iter_num == 3


class MaskedDataset(torch.utils.data.Dataset):
    """Random sequences where a random share of targets is -100 (ignored), different in every example."""

    def __init__(self, n=64, T=8, V=11):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randint(0, V, (n, T), generator=g)
        self.y = torch.randint(0, V, (n, T), generator=g)
        keep = torch.rand(n, T, generator=g) < torch.linspace(0.1, 1.0, n)[:, None]  # 10% to 100% counted
        self.y[~keep] = -100

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def test_gradient_accumulation_equals_one_big_batch():
    ds = MaskedDataset()
    runs = {}
    for batch_size, accum in [(16, 1), (4, 4), (8, 2)]:
        cfg = TrainerConfig(batch_size=batch_size, grad_accum_steps=accum, learning_rate=1e-2, max_iters=6,
                            device="cpu", progress=False)
        t = Trainer(tiny_gpt(), ds, None, cfg)  # tiny_gpt seeds: same weights, same data order
        t.grads = []
        t.add_callback("on_batch_end", lambda tr: tr.grads.append([p.grad.clone() for p in tr.model.parameters()]))
        t.train()
        runs[accum] = t
    assert runs[1].tokens == runs[4].tokens == runs[2].tokens
    for accum in (2, 4):
        for step in range(6):  # the gradient of every step: equal up to float rounding
            for a, b in zip(runs[1].grads[step], runs[accum].grads[step]):
                torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(runs[1].history["train_loss"], runs[accum].history["train_loss"], atol=1e-5, rtol=0)
        for a, b in zip(runs[1].model.parameters(), runs[accum].model.parameters()):  # AdamW amplifies rounding
            torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_dividing_by_the_number_of_micro_batches_is_wrong_with_ignored_targets():
    """The check above can fail: nanoGPT's `loss / k` weights each micro-batch equally, not each token."""
    ds, model = MaskedDataset(), tiny_gpt()
    x, y = ds.x[:16], ds.y[:16]
    model.zero_grad()
    model(x, y)[1].backward()
    big = model.lm_head.weight.grad.clone()
    model.zero_grad()
    for i in range(4):
        (model(x[4 * i:4 * i + 4], y[4 * i:4 * i + 4])[1] / 4).backward()
    assert (model.lm_head.weight.grad - big).abs().max() > 1e-3


def test_ctrl_c_saves_a_checkpoint_and_says_where(tmp_path, monkeypatch, capsys):
    def interrupt(tr):
        if tr.iter_num == 5:
            raise KeyboardInterrupt

    t = make(max_iters=20, eval_interval=100, ckpt_dir=str(tmp_path / "runs"))
    t.add_callback("on_batch_end", interrupt)
    ended = []
    t.add_callback("on_train_end", lambda tr: ended.append(tr.iter_num))
    t.train()  # returns: no KeyboardInterrupt escapes
    out = capsys.readouterr().out
    assert t.interrupted and ended == [5]
    assert f"Interrupted at step 5: saved a checkpoint to {tmp_path / 'runs' / 'step_00000005'}" in out
    resumed = make(max_iters=20, eval_interval=100, resume_from=str(tmp_path / "runs"))
    assert resumed.iter_num == 5 and torch.equal(resumed.model.lm_head.weight, t.model.lm_head.weight)

    monkeypatch.chdir(tmp_path)  # no ckpt_dir: a clear default, ./checkpoints
    t = make(max_iters=20, eval_interval=100)
    t.add_callback("on_batch_end", interrupt)
    t.train()
    assert (tmp_path / "checkpoints" / "step_00000005" / "model.safetensors").is_file()
    assert str(tmp_path / "checkpoints") in capsys.readouterr().out


def test_a_working_compiled_model_with_gradient_accumulation(monkeypatch):
    class Wrapper(torch.nn.Module):  # stands in for torch.compile's OptimizedModule
        def __init__(self, model):
            super().__init__()
            self._orig_mod = model

        def forward(self, *args):
            return self._orig_mod(*args)

    monkeypatch.setattr(torch, "compile", lambda model, **kw: Wrapper(model))
    t = make(max_iters=4, eval_interval=4, eval_iters=1, compile=True, grad_accum_steps=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t.train()
    assert [str(w.message) for w in caught if "without compile" in str(w.message)] == []  # no fallback to eager
    assert isinstance(t.net, Wrapper) and t.iter_num == 4


def test_an_interrupted_evaluation_leaves_the_model_in_training_mode():
    trainer = make()
    trainer.model.train()

    def interrupt(*args):
        raise KeyboardInterrupt

    trainer.model.transformer.wte.forward = interrupt
    with pytest.raises(KeyboardInterrupt):
        trainer.evaluate()
    assert trainer.model.training


def test_each_chapters_trainer_trains_exactly_like_chapter_6s_with_its_defaults():
    """The subclasses of chapters 13 and 14 change a step only through the fields they add: with their
    defaults (fp32, no compile, one micro-batch) every chapter's Trainer gives the same weights, bit for bit."""
    from mingpt import fast, scale, trainer
    from mingpt.utils import set_seed

    ds = CharDataset(TEXT, block_size=8)
    weights = {}
    for module in (trainer, fast, scale):
        set_seed(0)
        t = module.Trainer(tiny_gpt(vocab_size=ds.vocab_size, block_size=8), ds, CharDataset(TEXT[:200], 8, chars=ds.chars),
                           module.TrainerConfig(batch_size=16, learning_rate=3e-3, device="cpu", progress=False,
                                                max_iters=30, lr_decay=True, warmup_tokens=500, final_tokens=3000,
                                                eval_interval=10, eval_iters=2))
        h = t.train()
        weights[module.__name__] = (t.model.state_dict(), h["test_loss"], t.tokens)
    (ref, ref_loss, ref_tokens), *others = weights.values()
    for state, test_loss, tokens in others:
        assert test_loss == ref_loss and tokens == ref_tokens
        assert all(torch.equal(state[k], ref[k]) for k in ref)
    assert scale.Trainer.__mro__[1:3] == (fast.Trainer, trainer.Trainer) and Trainer is scale.Trainer


def test_a_config_of_another_chapter_is_a_clear_error():
    from mingpt import trainer

    ds = CharDataset(TEXT, block_size=8)
    with pytest.raises(TypeError, match=r"mingpt\.scale\.Trainer needs a mingpt\.scale\.TrainerConfig, got a "
                                        r"mingpt\.trainer\.TrainerConfig; take Trainer and TrainerConfig from one module"):
        Trainer(tiny_gpt(vocab_size=ds.vocab_size, block_size=8), ds, None, trainer.TrainerConfig(progress=False))
    with pytest.raises(TypeError, match=r"mingpt\.trainer\.Trainer needs a mingpt\.trainer\.TrainerConfig, got a "
                                        r"mingpt\.scale\.TrainerConfig"):  # its accumulation would be ignored, silently
        trainer.Trainer(tiny_gpt(vocab_size=ds.vocab_size, block_size=8), ds, None,
                        TrainerConfig(grad_accum_steps=4, progress=False))
    with pytest.raises(TypeError, match="unexpected keyword argument 'precision'"):
        trainer.TrainerConfig(precision="bf16")  # chapter 6's config has no such field: chapter 13 adds it


def test_a_dataset_with_more_tokens_than_the_model_is_a_clear_error_before_training():
    ds = CharDataset(TEXT, block_size=8)
    with pytest.raises(ValueError, match=rf"the dataset has {ds.vocab_size} tokens, the model's vocab_size is 5: "
                                         rf"build the model with vocab_size={ds.vocab_size}"):
        Trainer(tiny_gpt(vocab_size=5, block_size=8), ds, None, TrainerConfig(progress=False))


def test_without_torch_compile_a_failing_first_step_fails_at_once(monkeypatch):
    """compile_model fell back already (no torch.compile): there is no compiled step to retry."""
    def no_compile(model, **kw):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", no_compile)
    t = make(max_iters=2, compile=True)
    calls = []

    def broken(x, y):
        calls.append(1)
        raise ValueError("a bug in the model")

    t.net = broken
    with warnings.catch_warnings(record=True) as caught, pytest.raises(ValueError, match="a bug in the model"):
        warnings.simplefilter("always")
        t.train()
    assert calls == [1] and not [w for w in caught if "first step" in str(w.message)]


def test_ctrl_c_in_an_on_train_end_callback_is_not_taken_for_an_interrupted_run(tmp_path):
    t = make(max_iters=3, ckpt_dir=str(tmp_path / "ck"))
    ends = []

    def end(trainer):
        ends.append(trainer.iter_num)
        raise KeyboardInterrupt

    t.add_callback("on_train_end", end)
    with pytest.raises(KeyboardInterrupt):
        t.train()
    assert ends == [3] and not t.interrupted and t.last_checkpoint.name == "step_00000003"
