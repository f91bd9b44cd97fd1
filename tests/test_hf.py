"""Hugging Face GPT-2 checkpoints: parity with transformers, exact round trips, and clear errors."""
import json
import subprocess
import sys

import pytest
import torch

transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

from mingpt.hf import (CheckpointError, config_from_hf, config_to_hf, hf_state_dict,  # noqa: E402
                       load_pretrained, resolve_checkpoint, save_pretrained)
from mingpt.model import GPT, GPTConfig  # noqa: E402

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

SHAPES = [
    dict(n_layer=1, n_head=1, n_embd=8, vocab_size=50, n_positions=16),
    dict(n_layer=2, n_head=2, n_embd=16, vocab_size=100, n_positions=32),
    dict(n_layer=2, n_head=4, n_embd=32, vocab_size=200, n_positions=48),
    dict(n_layer=3, n_head=3, n_embd=48, vocab_size=257, n_positions=64),
]


def hf_checkpoint(path, seed=0, **shape):
    """A random GPT-2 saved by transformers; initializer_range 0.3 spreads the logits like a trained model's."""
    torch.manual_seed(seed)
    config = GPT2Config(initializer_range=0.3, bos_token_id=None, eos_token_id=None, **shape)
    model = GPT2LMHeadModel(config).eval()
    model.save_pretrained(path)
    return model


def equal_tensors(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"L{s['n_layer']}H{s['n_head']}C{s['n_embd']}")
def test_logits_and_greedy_text_match_transformers(tmp_path, shape):
    reference = hf_checkpoint(tmp_path, **shape)
    model = load_pretrained(tmp_path)
    assert not model.training and model.lm_head.weight is model.transformer.wte.weight
    idx = torch.randint(0, shape["vocab_size"], (3, shape["n_positions"]))
    with torch.no_grad():
        torch.testing.assert_close(model(idx)[0], reference(idx).logits, rtol=0, atol=1e-4)
    prompt = idx[:, :4]
    n_new = shape["n_positions"] - 4
    theirs = reference.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n_new,
                                do_sample=False, pad_token_id=0)
    ours = model.generate(prompt, n_new)
    for a, b in zip(ours, theirs):
        parted = (a != b).nonzero()
        if len(parted):  # allowed only where the two picks tie to rounding (HF's cached keys/values differ slightly)
            t = parted[0].item()
            with torch.no_grad():
                logits = model(a[None, :t])[0][0, -1]
            assert abs(logits[a[t]] - logits[b[t]]).item() < 1e-4, f"greedy text parts at {t} without a tie"


@pytest.mark.parametrize("shape", SHAPES[:2], ids=lambda s: f"L{s['n_layer']}H{s['n_head']}C{s['n_embd']}")
def test_round_trip_through_transformers_is_exact(tmp_path, shape):
    torch.manual_seed(1)
    ours = GPT(GPTConfig(shape["vocab_size"], shape["n_positions"], n_layer=shape["n_layer"],
                         n_head=shape["n_head"], n_embd=shape["n_embd"]))
    save_pretrained(ours, tmp_path / "ours")
    theirs = GPT2LMHeadModel.from_pretrained(tmp_path / "ours")
    theirs.save_pretrained(tmp_path / "hf")
    back = load_pretrained(tmp_path / "hf")
    assert equal_tensors(ours, back)
    idx = torch.randint(0, shape["vocab_size"], (2, 8))
    with torch.no_grad():
        torch.testing.assert_close(back(idx)[0], theirs.eval()(idx).logits, rtol=0, atol=1e-4)


def test_saved_files_are_gpt2s(tmp_path):
    model = GPT(GPTConfig(50257, 16, n_layer=1, n_head=2, n_embd=8))
    save_pretrained(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["architectures"] == ["GPT2LMHeadModel"]
    assert config["activation_function"] == "gelu_new" and config["n_inner"] is None
    assert config["tie_word_embeddings"] is True and config["layer_norm_epsilon"] == 1e-5
    assert (config["n_positions"], config["vocab_size"], config["eos_token_id"]) == (16, 50257, 50256)
    with safetensors_torch.safe_open(tmp_path / "model.safetensors", "pt") as f:
        names = set(f.keys())
        assert f.metadata() == {"format": "pt"}
        assert f.get_tensor("transformer.h.0.mlp.c_fc.weight").shape == (8, 32)  # Conv1D: (in, out)
    assert "lm_head.weight" not in names and len(names) == len(model.state_dict()) - 1
    assert config_from_hf(config) == model.config
    assert config_to_hf(GPTConfig(100, 16))["bos_token_id"] is None  # no <|endoftext|> in a small vocabulary


def test_old_checkpoint_without_prefix_with_buffers_and_tied_head(tmp_path):
    torch.manual_seed(0)
    model = GPT(GPTConfig(40, 16, n_layer=2, n_head=2, n_embd=8)).eval()
    tensors = {k.removeprefix("transformer."): v for k, v in hf_state_dict(model).items()}
    for i in range(2):
        tensors[f"h.{i}.attn.bias"] = torch.tril(torch.ones(16, 16)).view(1, 1, 16, 16)
        tensors[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    tensors["lm_head.weight"] = tensors["wte.weight"].clone()  # present, and equal to the embedding: fine
    torch.save(tensors, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps(config_to_hf(model.config)))
    assert equal_tensors(load_pretrained(tmp_path), model)
    short = load_pretrained(tmp_path, block_size=8, use_sdpa=False, attn_pdrop=0.0)
    assert short.config.block_size == 8 and not short.config.use_sdpa
    torch.testing.assert_close(short.transformer.wpe.weight, model.transformer.wpe.weight[:8])


def broken(tmp_path, edit_tensors=None, edit_config=None):
    model = GPT(GPTConfig(40, 16, n_layer=2, n_head=2, n_embd=8))
    tensors, config = hf_state_dict(model), config_to_hf(model.config)
    if edit_tensors:
        edit_tensors(tensors)
    if edit_config:
        edit_config(config)
    safetensors_torch.save_file(tensors, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


@pytest.mark.parametrize("edit_tensors, edit_config, message", [
    (lambda t: t.pop("transformer.h.1.ln_2.bias"), None, "missing tensor(s): transformer.h.1.ln_2.bias"),
    (lambda t: t.update({"transformer.h.0.attn.q_attn.weight": torch.zeros(8, 8)}), None,
     "unexpected tensor(s) that mingpt's GPT-2 has no place for: transformer.h.0.attn.q_attn.weight"),
    (lambda t: t.update({"transformer.h.0.attn.c_attn.weight": torch.zeros(24, 8)}), None,
     "transformer.h.0.attn.c_attn.weight: the checkpoint has shape (24, 8), mingpt's GPT expects (8, 24)"),
    (lambda t: t.update({"transformer.wte.weight": torch.zeros(41, 8)}), None,
     "transformer.wte.weight: the checkpoint has shape (41, 8), mingpt's GPT expects (40, 8)"),
    (lambda t: t.update({"lm_head.weight": torch.ones(40, 8)}), None, "an untied head"),
    (None, lambda c: c.update(activation_function="relu"), "activation_function='relu'"),
    (None, lambda c: c.update(activation_function="gelu"), "activation_function='gelu'"),
    (None, lambda c: c.update(model_type="llama"), "model_type='llama'"),
    (None, lambda c: c.update(n_inner=16), "n_inner=16"),
    (None, lambda c: c.update(scale_attn_by_inverse_layer_idx=True), "scale_attn_by_inverse_layer_idx"),
    (None, lambda c: c.update(tie_word_embeddings=False), "tie_word_embeddings"),
    (None, lambda c: c.update(layer_norm_epsilon=1e-6), "layer_norm_epsilon"),
    (None, lambda c: c.pop("n_embd"), "no 'n_embd'"),
])
def test_bad_checkpoints_say_what_is_wrong(tmp_path, edit_tensors, edit_config, message):
    with pytest.raises(CheckpointError) as info:
        load_pretrained(broken(tmp_path, edit_tensors, edit_config))
    assert message in str(info.value)


def test_other_activation_names_and_overrides(tmp_path):
    folder = broken(tmp_path, edit_config=lambda c: c.update(activation_function="gelu_pytorch_tanh", n_inner=32))
    assert load_pretrained(folder).config.n_embd == 8  # the same function, and n_inner = 4 * n_embd
    with pytest.raises(CheckpointError, match="fixed by the checkpoint"):
        load_pretrained(folder, n_layer=3)
    with pytest.raises(CheckpointError, match="longer than the checkpoint's n_positions=16"):
        load_pretrained(folder, block_size=17)
    with pytest.raises(TypeError):
        load_pretrained(folder, dropout=0.0)
    with pytest.raises(CheckpointError, match="bias=False"):
        save_pretrained(GPT(GPTConfig(40, 16, n_layer=1, n_head=2, n_embd=8, bias=False)), tmp_path / "nobias")


def test_names_resolve_through_the_cache(tmp_path, monkeypatch):
    snapshot = tmp_path / "hub" / "models--openai-community--gpt2" / "snapshots" / "abc123"
    model = GPT(GPTConfig(40, 16, n_layer=1, n_head=2, n_embd=8))
    save_pretrained(model, snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc123")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # $HF_HOME/hub
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_checkpoint("gpt2") == snapshot  # "gpt2" is also looked up as openai-community/gpt2
    assert equal_tensors(load_pretrained("openai-community/gpt2"), model)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))  # takes precedence over HF_HOME
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE is set"):
        load_pretrained("gpt2")


def test_missing_things_give_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # as if it were not installed
    with pytest.raises(ImportError, match="pip install huggingface_hub"):
        load_pretrained("gpt2")
    with pytest.raises(FileNotFoundError, match="not a checkpoint directory"):
        load_pretrained(str(tmp_path / "no" / "such" / "dir"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        load_pretrained(tmp_path / "empty")
    (tmp_path / "empty" / "config.json").write_text(json.dumps(config_to_hf(GPTConfig(40, 16))))
    with pytest.raises(FileNotFoundError, match="holds no weights"):
        load_pretrained(tmp_path / "empty")


def test_mingpt_hf_imports_without_optional_packages():
    code = ("import sys; import mingpt.hf; "
            "assert not {'safetensors', 'huggingface_hub', 'transformers'} & set(sys.modules), 'imported eagerly'")
    subprocess.run([sys.executable, "-c", code], check=True)
