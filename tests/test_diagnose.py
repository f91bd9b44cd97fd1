"""Chapter 19's toolkit: the NaN detector, the checks, the memory estimate, the watch, "is my loss normal?"."""
import math
import os
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from mingpt.diagnose import (NonFiniteDetector, NonFiniteError, WatchedTrainer, check_targets, checkpoint_blocks,
                             estimate_memory, expected_results, future_leak, is_my_loss_normal, layer_of,
                             measure_peak_memory, normal_band, overlap_share, vocab_fingerprint)
from mingpt.model import GPT, GPTConfig
from mingpt.trainer import TrainerConfig

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import expected_results as tool  # noqa: E402


class Windows(Dataset):
    def __init__(self, n=64, T=8, V=11):
        g = torch.Generator().manual_seed(0)
        self.data, self.T = torch.randint(V, (n + T + 1,), generator=g), T
        self.vocab_size = V

    def __len__(self):
        return len(self.data) - self.T - 1

    def __getitem__(self, i):
        return self.data[i:i + self.T], self.data[i + 1:i + self.T + 1]


def tiny(**kw):
    torch.manual_seed(0)
    return GPT(GPTConfig(11, 8, n_layer=2, n_head=2, n_embd=16, embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0, **kw))


def trainer(model, steps=8, **kw):
    return WatchedTrainer(model, Windows(), None, TrainerConfig(batch_size=4, max_iters=steps, progress=False, **kw))


def test_layer_names():
    assert layer_of("transformer.h.3.mlp.c_fc.weight") == "h.3"
    assert layer_of("_orig_mod.transformer.wte.weight") == "wte"
    assert layer_of("lm_head.weight") == "lm_head"
    assert layer_of("module._orig_mod.transformer.h.0.attn.c_attn.weight") == "h.0"  # DDP around a compiled model


def test_nan_detector_names_the_planted_module_and_step():
    model = tiny()
    t = trainer(model, steps=10)
    detector = NonFiniteDetector(model)
    t.add_callback("on_batch_end", detector.next_step)

    def plant(tr):  # after step 5, one weight of the second block's MLP goes bad
        if tr.iter_num == 5:
            with torch.no_grad():
                tr.model.transformer.h[1].mlp.c_fc.weight[0, 0] = float("nan")

    t.add_callback("on_batch_end", plant)
    with detector, pytest.raises(NonFiniteError) as e:
        t.train()
    assert (e.value.module, e.value.step) == ("transformer.h.1.mlp.c_fc", 6), str(e.value)
    assert t.iter_num == 5 and "step 6" in str(e.value)


def test_nan_detector_names_an_output_that_goes_bad():
    model = tiny()
    detector = NonFiniteDetector(model, step=3)
    model.transformer.h[0].attn.register_forward_hook(lambda m, a, out: out * float("inf"))
    with detector, pytest.raises(NonFiniteError) as e:
        model(torch.zeros(1, 8, dtype=torch.long))
    assert (e.value.module, e.value.step, e.value.where) == ("transformer.h.0.attn", 3, "the output")


def test_nan_detector_checks_gradients_and_is_quiet_when_all_is_finite():
    model = tiny()
    detector = NonFiniteDetector(model)
    x = torch.zeros(2, 8, dtype=torch.long)
    with detector:
        _, loss = model(x, x)
    loss.backward()
    detector.check_gradients()  # finite: nothing raised
    model.transformer.h[1].attn.c_proj.weight.grad[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="gradient of weight") as e:
        detector.check_gradients()
    assert e.value.module == "transformer.h.1.attn.c_proj"


@pytest.mark.parametrize("kw", [dict(), dict(checkpointing=True), dict(grad_accum_steps=2),
                                dict(dropout=0.1), dict(vocab=2000)])
def test_memory_estimate_within_20_percent_of_the_measured_peak(kw):
    dropout, vocab = kw.pop("dropout", 0.0), kw.pop("vocab", 65)
    config = GPTConfig(vocab, 128, n_layer=2, n_head=4, n_embd=128, embd_pdrop=dropout, resid_pdrop=dropout,
                       attn_pdrop=dropout)
    with torch.device("meta"):
        estimate = estimate_memory(GPT(config), 8, **kw)
    torch.manual_seed(0)
    model = GPT(config)
    if kw.get("checkpointing"):
        checkpoint_blocks(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(vocab, (8, 128))
    accum = kw.get("grad_accum_steps", 1)

    def step():
        optimizer.zero_grad(set_to_none=True)
        for xb in x.chunk(accum):
            (model(xb, xb)[1] / accum).backward()
        optimizer.step()

    step()
    measured = measure_peak_memory(step, model, optimizer)
    assert 0.8 <= estimate.total / measured <= 1.2, (estimate, measured)


def test_memory_estimate_refuses_bad_settings():
    with torch.device("meta"):
        model = GPT(GPTConfig(65, 32, n_layer=1, n_head=2, n_embd=16))
    with pytest.raises(ValueError, match="multiple of grad_accum_steps"):
        estimate_memory(model, 10, grad_accum_steps=3)
    with pytest.raises(ValueError, match="optimizer must be"):
        estimate_memory(model, 8, optimizer="adam")


def test_checks_catch_the_mistakes_and_pass_the_right_thing():
    x = torch.randint(11, (4, 9))
    check_targets(x[:, :-1], x[:, 1:])
    with pytest.raises(ValueError, match="targets equal the inputs"):
        check_targets(x, x)
    model = tiny().eval()
    assert future_leak(model, x[:, :8]) < 1e-5
    for block in model.transformer.h:  # forget the mask
        block.attn.use_sdpa = False
        block.attn.mask.fill_(True)
    assert future_leak(model, x[:, :8]) > 1e-3
    assert vocab_fingerprint("abc") != vocab_fingerprint("acb") and vocab_fingerprint({"a": 0, "b": 1}) == vocab_fingerprint("ab")
    text = "".join(chr(97 + int(i)) for i in torch.randint(26, (5000,), generator=torch.Generator().manual_seed(0)))
    assert overlap_share(text, text[1000:2000], n=16) == 1.0
    assert overlap_share(text[:2500], text[2500:], n=16) == 0.0


def test_watch_records_every_step_and_catches_eval_mode():
    t = trainer(tiny(), steps=6)
    t.add_callback("on_batch_end", lambda tr: tr.model.eval() if tr.iter_num == 3 else None)  # forgets train()
    t.train()
    w = t.watch
    assert w.steps == list(range(1, 7)) and len(w.grad_norm) == 6
    assert set(w.layer_grad) == {"wte", "wpe", "h.0", "h.1", "ln_f"} and all(len(v) == 6 for v in w.layer_update.values())
    assert all(u > 0 for v in w.layer_update.values() for u in v)
    assert w.eval_mode_steps == [4, 5, 6] and "3 steps in eval mode" in repr(w)


def test_is_my_loss_normal_answers_from_the_table():
    table = expected_results()
    row = table["06-shakespeare"]
    assert is_my_loss_normal("06-shakespeare", row["values"][0])
    low, high = normal_band(row)
    worse = is_my_loss_normal("06-shakespeare", high + 0.1)
    assert not worse and worse.read_first[0] == "A learning rate too high" and "worse" in repr(worse)
    better = is_my_loss_normal("06-shakespeare", low - 0.1)
    assert not better and better.read_first[0] == "A loss too good to be true"
    accuracy = next(k for k, r in table.items() if r["better"] == "higher")
    assert is_my_loss_normal(accuracy, normal_band(table[accuracy])[0] - 1).read_first[0] == "A learning rate too high"
    with pytest.raises(KeyError, match="no expected result named 'nope'"):
        is_my_loss_normal("nope", 1.0)
    assert "on cuda the chapters may run larger" in repr(is_my_loss_normal("06-shakespeare", row["values"][0], "cuda"))


def test_the_table_holds_every_entry_the_tool_names():
    table = expected_results()
    assert set(table) == {e.key for e in tool.ENTRIES}
    for key, row in table.items():
        assert row["low"] <= row["high"] and len(row["values"]) == len(row["seeds"]) >= 1, key
        assert row["devices"], key


def test_the_tool_reads_an_entry_and_says_when_it_cannot():
    entry = tool.ENTRIES[0]
    cells = [{"cell_type": "code", "id": entry.cell, "outputs": [
        {"output_type": "stream", "text": "training: 10%\rtraining: 100%\rtrained bigram: val loss 2.4818 nats\n"}]}]
    assert tool.read(entry, tool.cell_texts(cells)) == 2.4818
    with pytest.raises(LookupError, match="printed nothing that matches"):
        tool.read(entry, {entry.cell: "something else"})
    with pytest.raises(LookupError, match="has no code cell with id"):
        tool.read(entry, {})


@pytest.mark.skipif(not os.environ.get("MINGPT_NBVAL_FROM_CACHE"), reason="needs the site build's execution of "
                    "every chapter (CI sets MINGPT_NBVAL_FROM_CACHE after building the site)")
def test_every_chapter_printed_a_normal_result():
    problems = tool.check(Path(os.environ["MINGPT_NBVAL_FROM_CACHE"]))
    assert not problems, "\n".join(problems)


def test_the_ci_check_passes_a_normal_result_and_fails_one_outside_its_band(monkeypatch):
    entry = next(e for e in tool.ENTRIES if e.key == "06-shakespeare")
    recorded = expected_results()[entry.key]["values"][0]
    monkeypatch.setattr(tool, "ENTRIES", [entry])
    printed = {}
    monkeypatch.setattr(tool, "cached_cells", lambda path, cache: [{"cell_type": "code", "id": entry.cell, "outputs": [
        {"output_type": "stream", "text": f"GPT validation loss {printed['value']:.4f}, bigram baseline 2.4819\n"}]}])
    printed["value"] = recorded
    assert tool.check(Path("unused")) == []
    printed["value"] = 9.9
    (problem,) = tool.check(Path("unused"))
    assert "printed 9.9, outside the table's normal band" in problem


def test_the_ci_check_says_once_that_a_chapter_is_missing_from_the_cache(monkeypatch):
    entries = [e for e in tool.ENTRIES if e.notebook == "06_trainer"]
    assert len(entries) > 1
    monkeypatch.setattr(tool, "ENTRIES", entries)

    def missing(path, cache):
        raise LookupError(f"{cache} holds no execution of {path.name}'s current code")

    monkeypatch.setattr(tool, "cached_cells", missing)
    (problem,) = tool.check(Path("nowhere"))
    assert "holds no execution of 06_trainer.ipynb" in problem
