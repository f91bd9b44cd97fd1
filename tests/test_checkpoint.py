"""Checkpoints: round trip, crash-safe writes, no code execution on load, clear errors, wrapper prefixes."""
import hashlib
import json
import pickle
import sys

import pytest
import torch

from conftest import tiny_gpt
from mingpt import checkpoint as ck
from mingpt.checkpoint import load_checkpoint, load_model, load_model_state, latest_checkpoint
from mingpt.data import CharDataset
from mingpt.hf import CheckpointError
from mingpt import Trainer, TrainerConfig

TEXT = "the quick brown fox jumps over the lazy dog. " * 10


def trainer(tmp_path, **kw):
    ds = CharDataset(TEXT, block_size=8)
    cfg = dict(batch_size=8, learning_rate=3e-3, device="cpu", progress=False, ckpt_dir=str(tmp_path / "ckpt"),
               checkpoint_interval=3, max_iters=6)
    return Trainer(tiny_gpt(vocab_size=ds.vocab_size, block_size=8), ds, None, TrainerConfig(**(cfg | kw)))


def test_round_trip_restores_everything(tmp_path):
    t = trainer(tmp_path)
    t.train()
    assert latest_checkpoint(tmp_path / "ckpt").name == "step_00000006"
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["latest", "step_00000003", "step_00000006"]
    u = trainer(tmp_path, resume_from=str(tmp_path / "ckpt"))
    assert (u.iter_num, u.epoch, u.batch_in_epoch, u.tokens) == (t.iter_num, t.epoch, t.batch_in_epoch, t.tokens)
    for a, b in zip(t.model.state_dict().values(), u.model.state_dict().values()):
        assert torch.equal(a, b)
    assert u.model.transformer.wte.weight is u.model.lm_head.weight  # the tie survives (stored once)
    sa, sb = t.optimizer.state_dict()["state"], u.optimizer.state_dict()["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    assert u.history == t.history
    model = load_model(tmp_path / "ckpt")
    assert model.config == t.model.config and torch.equal(model.lm_head.weight, t.model.lm_head.weight)


class Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):  # what unpickling calls: here, create a file
        return (open, (self.path, "w"))


def test_loading_never_runs_code(tmp_path):
    t = trainer(tmp_path)
    t.train()
    marker = tmp_path / "pwned"
    step = latest_checkpoint(tmp_path / "ckpt")
    (step / "trainer.pt").write_bytes(pickle.dumps({"optimizer": Evil(str(marker))}, protocol=2))
    torch.save({"optimizer": Evil(str(marker))}, tmp_path / "evil_zip.pt")  # torch.save's zip format too
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="trainer.pt changed after it was saved"):  # the checksum sees it first
        load_checkpoint(tmp_path / "ckpt")
    config = json.loads((step / "config.json").read_text())
    config["sha256"]["trainer.pt"] = hashlib.sha256((step / "trainer.pt").read_bytes()).hexdigest()  # a forger's
    (step / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="refused to load.*pickle runs code"):
        load_checkpoint(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="refused to load"):
        ck.load_state(tmp_path / "evil_zip.pt")
    assert not marker.exists()


@pytest.mark.parametrize("name", ["model.safetensors", "trainer.pt", "config.json"])
def test_truncated_files_get_clear_errors(tmp_path, name):
    t = trainer(tmp_path)
    t.train()
    path = latest_checkpoint(tmp_path / "ckpt") / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=f"{name}.*truncated"):
        load_checkpoint(tmp_path / "ckpt")


def test_a_checkpoint_of_another_shape_names_the_key_and_shapes(tmp_path):
    trainer(tmp_path).train()
    weights = load_checkpoint(tmp_path / "ckpt")["weights"]
    wider = tiny_gpt(vocab_size=weights["lm_head.weight"].shape[0], n_embd=32)
    with pytest.raises(CheckpointError, match=r"transformer.wte.weight has shape \(\d+, 16\) in the checkpoint, "
                                              r"but the model's transformer.wte.weight has shape \(\d+, 32\)"):
        load_model_state(wider, weights)
    deeper = tiny_gpt(vocab_size=weights["lm_head.weight"].shape[0], n_layer=3)
    with pytest.raises(CheckpointError, match=r"missing key\(s\) transformer.h.2.ln_1.weight"):
        load_model_state(deeper, weights)


def test_compiled_and_ddp_state_dicts_load_into_a_plain_model(tmp_path):
    import torch.distributed as dist

    source, plain = tiny_gpt(), tiny_gpt(n_layer=2)
    torch.nn.init.normal_(source.lm_head.weight)  # make them differ
    compiled = torch.compile(source)  # wrapping only: nothing is compiled until it is called
    assert next(iter(compiled.state_dict())).startswith("_orig_mod.")
    load_model_state(plain, compiled.state_dict())
    assert torch.equal(plain.lm_head.weight, source.lm_head.weight)
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        ddp = torch.nn.parallel.DistributedDataParallel(source)
        sd = torch.compile(ddp).state_dict()
        assert next(iter(sd)).startswith("_orig_mod.module.")
        fresh = tiny_gpt()
        load_model_state(fresh, sd)
        assert torch.equal(fresh.lm_head.weight, source.lm_head.weight)
        assert "module." not in ck.weights_to_bytes(ddp)[:2000].decode("latin-1")  # saved under clean names
    finally:
        dist.destroy_process_group()


def test_a_crash_mid_write_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    t = trainer(tmp_path, max_iters=3)
    t.train()
    good = latest_checkpoint(tmp_path / "ckpt")
    real_write = ck._write_file

    def crash_on_state(path, data):
        if path.name == "trainer.pt":
            real_write(path, data[: len(data) // 3])  # half-written, then the machine dies
            raise SystemExit("power cut")
        real_write(path, data)

    monkeypatch.setattr(ck, "_write_file", crash_on_state)
    t.iter_num = 4
    with pytest.raises(SystemExit):
        t.save_training_checkpoint()
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path / "ckpt") == good
    assert not (tmp_path / "ckpt" / "step_00000004").exists()
    assert load_checkpoint(tmp_path / "ckpt")["state"]["iter_num"] == 3
    t.save_training_checkpoint()  # the next save clears the debris
    assert [p.name for p in (tmp_path / "ckpt").glob(".tmp-*")] == []


def test_missing_safetensors_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(ImportError, match="pip install safetensors"):
        ck.weights_to_bytes(tiny_gpt())


def test_config_json_is_readable(tmp_path):
    trainer(tmp_path).train()
    config = json.loads((latest_checkpoint(tmp_path / "ckpt") / "config.json").read_text())
    assert config["step"] == 6 and config["model"]["n_embd"] == 16 and config["trainer"]["batch_size"] == 8
