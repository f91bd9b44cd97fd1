"""The catalogue of clear errors (issue 5): each bad input, raised before any work, says what was wrong and what was expected.

Chapter 14 prints the same catalogue as a table.
"""
import pytest
import torch

from conftest import tiny_gpt
from mingpt.data import CharDataset, fetch
from mingpt.hf import CheckpointError
from mingpt.model import GPTConfig
from mingpt import Trainer, TrainerConfig
from mingpt.utils import generate

TEXT = "hello world, hello minGPT. " * 4


def trainer(**kw):
    ds = CharDataset(TEXT, block_size=8)
    return Trainer(tiny_gpt(vocab_size=ds.vocab_size), ds, None, TrainerConfig(device="cpu", progress=False, **kw))


def corrupt_checkpoint(tmp_path):
    t = trainer(ckpt_dir=str(tmp_path / "ck"), max_iters=1)
    t.train()
    weights = t.last_checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    return trainer(resume_from=str(tmp_path / "ck"))


def other_shape_checkpoint(tmp_path):
    t = trainer(ckpt_dir=str(tmp_path / "ck"), max_iters=1)
    t.train()
    ds = CharDataset(TEXT, block_size=8)
    return Trainer(tiny_gpt(vocab_size=ds.vocab_size, n_embd=32), ds, None,
                   TrainerConfig(device="cpu", progress=False, resume_from=str(tmp_path / "ck")))


x = torch.zeros(1, 4, dtype=torch.long)
# (what is wrong, the call, the exception, a pattern: the bad value and what was expected)
CASES = [
    ("n_embd not divisible by n_head", lambda p: GPTConfig(11, 8, n_head=3, n_embd=16), ValueError,
     r"n_embd=16 must be divisible by n_head=3; try n_embd=15"),
    ("a non-positive size", lambda p: GPTConfig(11, 8, n_layer=0), ValueError,
     r"n_layer must be a positive int, got 0"),
    ("dropout outside [0, 1)", lambda p: GPTConfig(11, 8, attn_pdrop=1.0), ValueError,
     r"attn_pdrop is a dropout probability and must be in \[0, 1\), got 1.0"),
    ("input ids not integers", lambda p: tiny_gpt()(torch.zeros(1, 4)), TypeError,
     r"expects token ids as an integer tensor \(torch.long\), got .*float32"),
    ("input ids not 2-D", lambda p: tiny_gpt()(torch.zeros(4, dtype=torch.long)), ValueError,
     r"expects token ids of shape \(batch, time\), got shape \(4,\)"),
    ("input longer than block_size", lambda p: tiny_gpt()(torch.zeros(1, 9, dtype=torch.long)), ValueError,
     r"sequence of length 9 is longer than block_size=8"),
    ("a negative id in a prompt", lambda p: tiny_gpt().generate(torch.tensor([[0, -1]]), 1), ValueError,
     r"token ids must be in \[0, 11\), got values from -1"),
    ("an id >= vocab_size in a prompt", lambda p: generate(tiny_gpt(), torch.tensor([[0, 11]]), 1), ValueError,
     r"token ids must be in \[0, 11\), got values from 0 to 11"),
    ("targets of the wrong shape", lambda p: tiny_gpt()(x, torch.zeros(1, 3, dtype=torch.long)), ValueError,
     r"targets must have the shape of idx \(1, 4\), got \(1, 3\)"),
    ("temperature <= 0", lambda p: tiny_gpt().generate(x, 2, temperature=0.0), ValueError,
     r"temperature must be > 0, got 0.0"),
    ("top_k < 1", lambda p: generate(tiny_gpt(), x, 2, do_sample=True, top_k=0), ValueError,
     r"top_k must be an int >= 1 \(or None for no limit\), got 0"),
    ("top_p outside (0, 1]", lambda p: tiny_gpt().generate(x, 2, do_sample=True, top_p=1.5), ValueError,
     r"top_p must be in \(0, 1\] \(or None\), got 1.5"),
    ("a text shorter than block_size + 1", lambda p: CharDataset("hello", block_size=8), ValueError,
     r"the text has 5 characters, but block_size=8 needs at least 9"),
    ("an empty training text", lambda p: CharDataset("", block_size=8), ValueError,
     r"CharDataset got an empty text; give it at least block_size \+ 1 characters"),
    ("characters outside the vocabulary", lambda p: CharDataset("hello!", 2, chars="ehlo"), ValueError,
     r"1 characters outside the vocabulary: '!'; build the vocabulary from this text or add them"),
    ("a missing data file", lambda p: fetch("no_such_corpus.txt", "file:///no/such/file", "0" * 64),
     FileNotFoundError, r"no_such_corpus.txt is not in \$MINGPT_DATA_DIR or .*, and downloading file:///no/such/file "
                        r"failed .*; download it by hand into "),
    ("ckpt_path in a folder that does not exist", lambda p: trainer(ckpt_path=str(p / "no" / "m.pt")),
     FileNotFoundError, r"ckpt_path .*m.pt' is in .*no, which does not exist; create the folder first"),
    ("an empty training dataset", lambda p: Trainer(tiny_gpt(), [], None, TrainerConfig(device="cpu")), ValueError,
     r"the training dataset is empty; is the text shorter than block_size \+ 1\?"),
    ("a non-positive TrainerConfig size", lambda p: TrainerConfig(grad_accum_steps=0), ValueError,
     r"grad_accum_steps must be a positive int, got 0"),
    ("an unknown precision", lambda p: TrainerConfig(precision="fp8"), ValueError,
     r"precision must be one of 'fp32', 'bf16', 'fp16', 'auto', got 'fp8'"),
    ("fp16 on a CPU", lambda p: trainer(precision="fp16"), ValueError,
     r"'fp16' is for GPUs .*on a CPU use 'bf16' or 'fp32'"),
    ("resume_from a path that does not exist", lambda p: trainer(resume_from=str(p / "gone")), FileNotFoundError,
     r"resume_from .*gone' does not exist; expected a checkpoint folder"),
    ("a truncated checkpoint", corrupt_checkpoint, CheckpointError,
     r"model.safetensors changed after it was saved: its sha256 is not the one config.json recorded \(truncated"),
    ("a checkpoint of another shape", other_shape_checkpoint, CheckpointError,
     r"transformer.wte.weight has shape \(\d+, 16\) in the checkpoint, but the model's transformer.wte.weight "
     r"has shape \(\d+, 32\)"),
]


@pytest.mark.parametrize("what, call, exception, pattern", CASES, ids=[c[0] for c in CASES])
def test_clear_error(tmp_path, monkeypatch, what, call, exception, pattern):
    monkeypatch.setenv("MINGPT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(exception, match=pattern):
        call(tmp_path)
