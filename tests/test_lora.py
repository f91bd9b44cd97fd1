"""Chapter 15's LoRA: parity with peft, merging, adapter files and their errors."""
import copy

import pytest
import torch

from mingpt.hf import CheckpointError, load_pretrained
from mingpt.lora import (ADAPTER_WEIGHTS, apply_lora, load_adapter, lora_layers, merge_and_unload, merge_lora,
                         save_adapter, trainable_parameters, unmerge_lora)
from mingpt.model import GPT, GPTConfig


def small_gpt(n_embd=32, seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(50, 16, n_layer=2, n_head=2, n_embd=n_embd)).eval()


def randomize_updates(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    for layer in lora_layers(model).values():
        layer.lora_B.weight.data = torch.randn(layer.lora_B.weight.shape, generator=g)


@pytest.mark.parametrize("targets", [["c_attn", "c_proj", "c_fc"], ["c_attn"], ["transformer.h.1.mlp.*"]])
def test_same_logits_and_trainable_count_as_peft(tmp_path, targets):
    peft = pytest.importorskip("peft")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=100, n_positions=32,
                                                         initializer_range=0.3)).save_pretrained(tmp_path)
    ours = load_pretrained(tmp_path).eval()
    peft_targets = targets if "*" not in targets[0] else ["h.1.mlp.c_fc", "h.1.mlp.c_proj"]
    theirs = peft.get_peft_model(transformers.GPT2LMHeadModel.from_pretrained(tmp_path), peft.LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.0, target_modules=peft_targets, fan_in_fan_out=True)).eval()
    apply_lora(ours, targets=targets, rank=4, alpha=8.0)
    assert set(lora_layers(ours)) == {n[len("base_model.model."):] for n, m in theirs.named_modules()
                                      if hasattr(m, "lora_A") and "default" in getattr(m, "lora_A", {})}
    for name, layer in lora_layers(ours).items():
        twin = theirs.base_model.model.get_submodule(name)
        torch.nn.init.normal_(twin.lora_B["default"].weight, std=0.1)  # a trained-looking update
        layer.lora_A.weight.data.copy_(twin.lora_A["default"].weight)
        layer.lora_B.weight.data.copy_(twin.lora_B["default"].weight)
    idx = torch.randint(0, 100, (3, 32))
    with torch.no_grad():
        reference = theirs(idx).logits
        assert (ours(idx)[0] - reference).abs().max() < 1e-5
        assert (merge_lora(ours)(idx)[0] - reference).abs().max() < 1e-5
    assert trainable_parameters(ours) == theirs.get_nb_trainable_parameters()[0]


def test_fresh_adapter_is_the_base_and_merge_unmerge_round_trip():
    base = small_gpt()
    model = copy.deepcopy(base)
    names = apply_lora(model, rank=3, alpha=6.0)
    assert len(names) == 8 and trainable_parameters(model) == sum(3 * (m.base.in_features + m.base.out_features)
                                                                  for m in lora_layers(model).values())
    idx = torch.randint(0, 50, (2, 16))
    assert torch.equal(model(idx)[0], base(idx)[0])
    randomize_updates(model)
    unmerged = model(idx)[0]
    assert (unmerged - base(idx)[0]).abs().max() > 1e-3, "a non-zero update must change the logits"
    merge_lora(model)
    torch.testing.assert_close(model(idx)[0], unmerged, rtol=0, atol=1e-5)
    with pytest.raises(RuntimeError, match="already merged"):
        merge_lora(model)
    unmerge_lora(model)
    torch.testing.assert_close(model(idx)[0], unmerged, rtol=0, atol=1e-5)
    plain = merge_and_unload(copy.deepcopy(model))
    assert not lora_layers(plain) and all(p.requires_grad for p in plain.parameters())
    torch.testing.assert_close(plain(idx)[0], unmerged, rtol=0, atol=1e-5)


def test_adapter_file_round_trip_and_its_errors(tmp_path):
    base = small_gpt()
    model = copy.deepcopy(base)
    apply_lora(model, targets=["attn.c_attn"], rank=2, alpha=2.0)
    randomize_updates(model)
    folder = save_adapter(model, tmp_path / "adapter")
    idx = torch.randint(0, 50, (2, 16))
    assert torch.equal(load_adapter(copy.deepcopy(base), folder)(idx)[0], model(idx)[0])
    with pytest.raises(CheckpointError, match="n_embd=32, this model has n_embd=64"):
        load_adapter(small_gpt(n_embd=64), folder)
    data = bytearray((folder / ADAPTER_WEIGHTS).read_bytes())
    data[-3] ^= 0xFF
    (folder / ADAPTER_WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="changed after it was saved"):
        load_adapter(copy.deepcopy(base), folder)
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        load_adapter(copy.deepcopy(base), tmp_path / "nowhere")


@pytest.mark.parametrize("kwargs, message", [
    (dict(targets="c_atn"), "'c_atn': it matches no module; the model's Linear layers are lm_head"),
    (dict(targets="attn"), "CausalSelfAttention, not a Linear"),
    (dict(rank=0), "must be an int from 1 to 32"),
    (dict(rank=33), "got 33"),
    (dict(rank=2.0), "got 2.0"),
])
def test_bad_settings_are_refused_before_the_model_changes(kwargs, message):
    model = small_gpt()
    before = {n: p.clone() for n, p in model.state_dict().items()}
    with pytest.raises(ValueError, match=message):
        apply_lora(model, **kwargs)
    assert not lora_layers(model) and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(before[n], p) for n, p in model.state_dict().items())
    apply_lora(model)
    with pytest.raises(ValueError, match="already has LoRA layers"):
        apply_lora(model)
