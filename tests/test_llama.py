"""Llama-family checkpoints and tokenizer.json (chapter 17): parity with transformers and tokenizers, exact
round trips, Llama 3's RoPE scaling, and clear errors. Offline: every model and tokenizer is built here."""
import json
import math
import os
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
pytest.importorskip("safetensors.torch")
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

import mingpt.modern as modern  # noqa: E402
from mingpt.hf import CheckpointError, import_safetensors, save_pretrained  # noqa: E402
from mingpt.llama import (GPT, LLAMA_RECIPE, GPTConfig, chat_prompt, config_from_llama,  # noqa: E402
                          config_to_llama, llama3_inv_freq, load_llama, load_llama_state_dict,
                          load_tokenizer_json, python_regex, rope_inv_freq, save_llama)

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

LLAMA3 = dict(rope_type="llama3", factor=4.0, low_freq_factor=1.0, high_freq_factor=4.0,
              original_max_position_embeddings=32)
CONFIGS = {  # (num_key_value_heads, tie_word_embeddings, rope_scaling)
    "gqa-untied": (2, False, None),
    "mqa-tied": (1, True, None),
    "mha-untied": (4, False, None),
    "gqa-tied": (2, True, None),
    "gqa-llama3": (2, False, LLAMA3),
}


def random_llama(n_kv=2, tie=False, scaling=None, seed=0, **fields):
    """A random LlamaForCausalLM built offline; initializer_range 0.2 spreads the logits, so greedy is decided."""
    torch.manual_seed(seed)
    hf = dict(vocab_size=97, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=n_kv, max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=5000.0,
              tie_word_embeddings=tie, initializer_range=0.2, bos_token_id=None, eos_token_id=None,
              pad_token_id=None, rope_scaling=dict(scaling) if scaling else None) | fields
    return LlamaForCausalLM(LlamaConfig(**hf)).eval()


@pytest.fixture(scope="module")
def idx():
    return torch.randint(0, 97, (3, 64), generator=torch.Generator().manual_seed(0))  # (B, T), T = the full context


@pytest.mark.parametrize("name", list(CONFIGS))
def test_logits_greedy_and_round_trip_equal_transformers(tmp_path, idx, name):
    n_kv, tie, scaling = CONFIGS[name]
    reference = random_llama(n_kv, tie, scaling)
    reference.save_pretrained(tmp_path / "hf", max_shard_size="100KB")  # sharded, as big models are
    assert (tmp_path / "hf" / "model.safetensors.index.json").is_file()
    ours = load_llama(tmp_path / "hf")
    assert isinstance(ours, GPT) and not ours.training
    assert (ours.config.n_kv_head, ours.config.tie_embeddings, ours.config.rope_scaling) == (n_kv, tie, scaling)
    with torch.no_grad():
        ref_logits = reference(idx).logits
        assert (ours(idx)[0] - ref_logits).abs().max().item() < 1e-4
    prompt = idx[:2, :8]
    assert torch.equal(ours.generate(prompt, 30), reference.generate(prompt, max_new_tokens=30, do_sample=False))
    # ours -> transformers -> ours: transformers computes the same, and the tensors come back bit for bit
    saved = save_llama(ours, tmp_path / "ours")
    assert ("lm_head.weight" in import_safetensors().load_file(saved / "model.safetensors")) == (not tie)
    hf_copy = LlamaForCausalLM.from_pretrained(saved).eval()
    with torch.no_grad():
        assert (hf_copy(idx).logits - ref_logits).abs().max().item() < 1e-4
    hf_copy.save_pretrained(tmp_path / "back")
    back = modern.GPT.from_pretrained(tmp_path / "back")  # dispatches on model_type
    assert type(back) is GPT
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), back.state_dict().values()))


def test_llama3_scaling_matters_and_equals_transformers_rule(idx, tmp_path):
    speeds = rope_inv_freq(128, 500000.0)
    s = dict(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=8192)
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    theirs, _ = ROPE_INIT_FUNCTIONS["llama3"](LlamaConfig(hidden_size=4096, num_attention_heads=32, rope_theta=500000.0,
                                                          rope_scaling=dict(rope_type="llama3", **s)), "cpu")
    assert torch.equal(llama3_inv_freq(speeds, **s), theirs)
    reference = random_llama(scaling=LLAMA3)
    unscaled = load_llama_state_dict(GPT(GPTConfig(97, 64, n_layer=2, n_head=4, n_embd=64, n_kv_head=2, mlp_hidden=160,
                                                   rope_theta=5000.0, tie_embeddings=False, **LLAMA_RECIPE)),
                                     reference.state_dict()).eval()
    with torch.no_grad():
        assert (unscaled(idx)[0] - reference(idx).logits).abs().max() > 1e-2  # the parity check would notice


def test_config_round_trip_and_both_rope_spellings():
    hf = dict(model_type="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
              num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192, rms_norm_eps=1e-5,
              rope_theta=100000, tie_word_embeddings=True)  # SmolLM2-135M's shape
    c = config_from_llama(hf)
    assert (c.n_kv_head, c.head_size, c.mlp_hidden, c.rope_theta, c.tie_embeddings) == (3, 64, 1536, 100000, True)
    assert config_from_llama(config_to_llama(c)) == c
    new_style = {k: v for k, v in hf.items() if k != "rope_theta"} | {
        "rope_parameters": dict(LLAMA3, rope_theta=100000)}
    scaled = config_from_llama(new_style)
    assert scaled.rope_scaling == LLAMA3 and config_from_llama(config_to_llama(scaled)) == scaled
    assert config_from_llama(hf, block_size=256).block_size == 256


@pytest.mark.parametrize("field, value, message", [
    ("hidden_act", "gelu", "hidden_act='gelu'"),
    ("attention_bias", True, "attention_bias=True"),
    ("mlp_bias", True, "mlp_bias=True"),
    ("head_dim", 32, "head_dim=32"),
    ("rope_scaling", {"rope_type": "yarn", "factor": 2.0}, "rope_scaling=.*RoPE type 'yarn' is not supported"),
    ("rope_scaling", {"rope_type": "llama3", "factor": 2.0}, "rope_scaling.low_freq_factor"),
    ("model_type", "mistral", "model_type='mistral'"),
])
def test_unsupported_config_fields_are_refused_naming_config_json(tmp_path, field, value, message):
    random_llama().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.pop("rope_parameters", None)
    config.update({field: value, "rope_theta": 5000.0})
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"config\.json: " + message):
        load_llama(tmp_path)


def test_missing_tensor_wrong_shape_and_overrides_are_clear_errors(tmp_path):
    random_llama().save_pretrained(tmp_path / "hf")
    tensors = import_safetensors().load_file(tmp_path / "hf" / "model.safetensors")
    for name, edit, message in (
            ("missing", lambda t: t.pop("model.layers.1.self_attn.k_proj.weight"),
             r"model\.safetensors\): missing tensor model\.layers\.1\.self_attn\.k_proj\.weight"),
            ("shape", lambda t: t.update({"model.norm.weight": torch.ones(65)}),
             r"model\.norm\.weight has shape \(65,\), but its config\.json asks for \(64,\)"),
            ("extra", lambda t: t.update({"model.layers.0.self_attn.q_proj.bias": torch.zeros(64)}),
             r"unexpected tensor\(s\).*q_proj\.bias")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text((tmp_path / "hf" / "config.json").read_text())
        broken = dict(tensors)
        edit(broken)
        import_safetensors().save_file(broken, folder / "model.safetensors")
        with pytest.raises(CheckpointError, match=message):
            load_llama(folder)
    with pytest.raises(CheckpointError, match="n_layer"):
        load_llama(tmp_path / "hf", n_layer=1)
    with pytest.raises(CheckpointError, match="block_size=128 is longer"):
        load_llama(tmp_path / "hf", block_size=128)


def test_other_recipes_are_refused_and_gpt2_checkpoints_still_load(tmp_path):
    with pytest.raises(CheckpointError, match="Llama recipe"):
        config_to_llama(modern.GPTConfig(10, 8, n_layer=1, n_head=2, n_embd=8))
    from mingpt.model import GPT as GPT2, GPTConfig as GPT2Config

    torch.manual_seed(0)
    gpt2 = GPT2(GPT2Config(50, 16, n_layer=1, n_head=2, n_embd=8)).eval()
    save_pretrained(gpt2, tmp_path)
    loaded = modern.GPT.from_pretrained(tmp_path)  # a GPT-2 checkpoint: chapter 11's path, chapter 5's GPT
    assert type(loaded) is GPT2 and torch.equal(loaded.lm_head.weight, gpt2.lm_head.weight)


# --- tokenizer.json --------------------------------------------------------------------------------------------
CHATML = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
HARD = ["Hello world!!  I'LL say   don't, 3.14 \U0001f917\n\n  x", "   leading", "trailing   ", "tabs\tand\r\nCRLF\r\n",
        "ünïcödé Ωμέγα 東京 ١٢٣ ½ ℕ", "emoji 👍🏽🇺🇸 and ❤️", "12345 and 1,000,000 and ١٢٣٤", "\n\n\n", " ", "",
        "<|im_start|>user\nHi<|im_end|>\n", "a<|im_end|><|im_end|>b <|endoftext|> <|im_start|", "x\x00y\x1c\x85z"]


def shakespeare() -> str:
    path = Path(os.environ.get("MINGPT_DATA_DIR", "")) / "tinyshakespeare.txt"
    if path.is_file():
        return path.read_text()
    from mingpt.data import tiny_shakespeare

    return tiny_shakespeare()


def trained(tmp_path, pre, vocab_size=1000, specials=CHATML, ignore_merges=False, name="tokenizer.json"):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence(pre)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([shakespeare()], trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(str(tmp_path / name))
    return tmp_path / name


@pytest.mark.parametrize("kind", ["bytelevel", "smollm2", "llama3"])
def test_tokenizer_json_ids_equal_the_tokenizers_library(tmp_path, kind):
    pre = {"bytelevel": [pre_tokenizers.ByteLevel(add_prefix_space=False)],
           "smollm2": [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)],
           "llama3": [pre_tokenizers.Split(tokenizers.Regex(LLAMA3_PATTERN), behavior="isolated"),
                      pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]}[kind]
    path = trained(tmp_path, pre, ignore_merges=kind == "llama3")
    reference, ours = Tokenizer.from_file(str(path)), load_tokenizer_json(path)
    for s in HARD:
        assert ours.encode(s) == reference.encode(s, add_special_tokens=False).ids, repr(s)
        assert ours.decode(ours.encode(s)) == s
    assert [ours.token_id(t) for t in CHATML] == [0, 1, 2]
    assert ours.encode("x<|im_end|>y").count(2) == 1
    text = shakespeare() if kind == "smollm2" else shakespeare()[:100_000]
    assert ours.encode(text) == reference.encode(text, add_special_tokens=False).ids


def test_a_byte_missing_from_the_vocabulary_is_dropped_as_tokenizers_drops_it(tmp_path):
    path = trained(tmp_path, [pre_tokenizers.ByteLevel(add_prefix_space=False)], vocab_size=400)
    spec = json.loads(path.read_text())
    del spec["model"]["vocab"]["Ā"]  # byte 0, which no merge of Shakespeare's uses
    path.write_text(json.dumps(spec))
    reference, ours = Tokenizer.from_file(str(path)), load_tokenizer_json(path)
    for s in ("a\x00b", "\x00\x00 the\x00", "the cat"):
        assert ours.encode(s) == reference.encode(s, add_special_tokens=False).ids, repr(s)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.update(normalizer={"type": "NFC"}), "normalizer='NFC'"),
    (lambda s: s.update(pre_tokenizer={"type": "Whitespace"}), "pre_tokenizer.type='Whitespace'"),
    (lambda s: s.update(pre_tokenizer={"type": "Split", "pattern": {"String": " "}, "behavior": "Removed"}),
     "pre_tokenizer.Split"),
    (lambda s: s.update(pre_tokenizer={"type": "ByteLevel", "add_prefix_space": True}), "add_prefix_space"),
    (lambda s: s["model"].update(dropout=0.1), "model.dropout=0.1"),
    (lambda s: s["model"].update(byte_fallback=True), "model.byte_fallback=True"),
    (lambda s: s["model"].update(type="WordPiece"), "model.type='WordPiece'"),
    (lambda s: s["added_tokens"][0].update(lstrip=True), "added tokens that swallow spaces"),
    (lambda s: s["model"]["merges"].append(["Ġ", "nonexistent"]), r"model\.merges\[\d+\]"),
])
def test_unsupported_tokenizer_json_is_refused_by_field(tmp_path, edit, message):
    path = trained(tmp_path, [pre_tokenizers.ByteLevel(add_prefix_space=False)], vocab_size=300)
    spec = json.loads(path.read_text())
    edit(spec)
    path.write_text(json.dumps(spec))
    with pytest.raises(CheckpointError, match=message):
        load_tokenizer_json(path)


def test_python_regex_spells_out_unicode_classes():
    assert python_regex(r"\p{L}+").fullmatch("Ωμέγα東京")
    assert not python_regex(r"\p{L}").fullmatch("1")
    assert python_regex(r"[^\s\p{L}]+").fullmatch("123!?")
    assert python_regex(r"\s").fullmatch("\u3000") and not python_regex(r"\s").fullmatch("\x1c")  # White_Space
    with pytest.raises(ValueError, match="general categories"):
        python_regex(r"\p{Han}")


# --- chat prompts ----------------------------------------------------------------------------------------------
SMOLLM2_TEMPLATE = (  # SmolLM2-135M-Instruct's chat_template (its tokenizer_config.json)
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
CHATML_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
                   " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
                   "{{ '<|im_start|>assistant\n' }}{% endif %}")


def test_chat_prompt_equals_apply_chat_template(tmp_path):
    path = trained(tmp_path, [pre_tokenizers.ByteLevel(add_prefix_space=False)], vocab_size=300)
    hf_tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(path))
    conversations = [
        [{"role": "user", "content": "What is 2 + 2?"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi\nthere"},
         {"role": "assistant", "content": "Hello."}, {"role": "user", "content": ""}],
    ]
    system = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    for messages in conversations:
        for template, default in ((SMOLLM2_TEMPLATE, system), (CHATML_TEMPLATE, None)):
            for gen in (True, False):
                expected = hf_tok.apply_chat_template(messages, chat_template=template, tokenize=False,
                                                      add_generation_prompt=gen)
                assert chat_prompt(messages, gen, default_system=default) == expected
    ours = load_tokenizer_json(path)
    prompt = chat_prompt(conversations[1])
    assert ours.encode(prompt) == hf_tok(prompt, add_special_tokens=False)["input_ids"]
    with pytest.raises(ValueError, match=r"messages\[0\]"):
        chat_prompt([{"role": "robot", "content": "beep"}])


def test_streaming_stops_at_the_stop_token():
    torch.manual_seed(0)
    model = GPT(GPTConfig(50, 32, n_layer=1, n_head=2, n_embd=16, **LLAMA_RECIPE)).eval()
    first = model.generate(torch.zeros(1, 3, dtype=torch.long), 10)[0, 3:].tolist()
    stop = first[4]
    streamed = [t.item() for t in model.stream(torch.zeros(1, 3, dtype=torch.long), 10, stop_tokens=stop)]
    assert streamed == first[:first.index(stop) + 1]
    assert math.isfinite(model(torch.zeros(1, 3, dtype=torch.long))[0].sum().item())


def test_import_mingpt_gives_the_modern_gpt_its_llama_loader(tmp_path):
    """mingpt/__init__.py imports chapter 17, so `from mingpt.modern import GPT` alone saves and loads Llama folders."""
    import subprocess
    import sys

    code = ("import sys, torch\nfrom mingpt.modern import GPT, GPTConfig, LLAMA_RECIPE\n"
            "m = GPT(GPTConfig(50, 16, n_layer=1, n_head=2, n_embd=16, n_kv_head=1, **LLAMA_RECIPE))\n"
            f"m.save_pretrained({str(tmp_path)!r})\nback = GPT.from_pretrained({str(tmp_path)!r})\n"
            "assert type(back).__module__ == 'mingpt.llama', type(back)\n"
            "assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), back.state_dict().values()))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "config.json").is_file() and (tmp_path / "model.safetensors").is_file()
