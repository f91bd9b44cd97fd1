"""Chapter 16's switches (mingpt.modern): each piece against its formula, the defaults against chapter 5, the cache."""
import math

import pytest
import torch

from mingpt import model as gpt2
from mingpt.attention import CausalSelfAttention
from mingpt.modern import (GPT, GPTConfig, GroupedKVCache, GroupedQueryAttention, RMSNorm, SwiGLU, apply_rope,
                           rope_tables)

LLAMA = dict(norm="rmsnorm", mlp="swiglu", position="rope", bias=False)
TINY = dict(vocab_size=50, block_size=16, n_layer=2, n_head=4, n_embd=32)


def test_rmsnorm_is_the_formula():
    x = torch.randn(2, 5, 16) * 3 + 1
    norm = RMSNorm(16, eps=1e-6)
    torch.nn.init.normal_(norm.weight)
    torch.testing.assert_close(norm(x), x / torch.sqrt((x ** 2).mean(-1, keepdim=True) + 1e-6) * norm.weight)
    assert norm.bfloat16()(x.bfloat16()).dtype == torch.bfloat16  # squares summed in float32, returned in bf16


def test_swiglu_width_matches_the_gelu_mlp_in_parameters():
    for C in (64, 128, 576, 768):
        H = GPTConfig(10, 8, n_embd=C, n_head=4, mlp="swiglu").mlp_hidden
        assert H % 8 == 0 and abs(3 * C * H / (8 * C * C) - 1) < 0.05, (C, H)
    assert GPTConfig(10, 8, n_embd=576, n_head=9, mlp="swiglu").mlp_hidden == 1536  # SmolLM2's width
    s = SwiGLU(8, 12)
    x = torch.randn(3, 8)
    torch.testing.assert_close(s(x), s.down_proj(torch.nn.functional.silu(s.gate_proj(x)) * s.up_proj(x)))


def test_rope_scores_depend_only_on_the_offset():
    hs = 16
    cos, sin = rope_tables(hs, 1200)
    q, k = torch.randn(hs), torch.randn(hs)

    def score(m, n):
        return (apply_rope(q, cos[m], sin[m]) @ apply_rope(k, cos[n], sin[n])).item()

    for shift in (1, 7, 1000):
        assert math.isclose(score(5, 2), score(5 + shift, 2 + shift), rel_tol=1e-4, abs_tol=1e-4)
    assert not math.isclose(score(5, 2), score(5, 3), rel_tol=1e-3)
    torch.testing.assert_close(apply_rope(q, cos[0], sin[0]), q)  # position 0 turns nothing


def test_attention_with_as_many_kv_heads_is_chapter_3s():
    torch.manual_seed(0)
    C, nh, T = 32, 4, 10
    ours = CausalSelfAttention(C, nh, T, bias=False).eval()
    theirs = GroupedQueryAttention(GPTConfig(50, T, n_embd=C, n_head=nh, bias=False)).eval()
    with torch.no_grad():
        for proj, w in zip((theirs.q_proj, theirs.k_proj, theirs.v_proj), ours.c_attn.weight.split(C, dim=0)):
            proj.weight.copy_(w)
        theirs.o_proj.weight.copy_(ours.c_proj.weight)
    x = torch.randn(2, T, C)
    torch.testing.assert_close(theirs(x), ours(x), rtol=0, atol=1e-5)


def test_the_defaults_are_chapter_5s_gpt():
    torch.manual_seed(0)
    shape = dict(TINY, embd_pdrop=0, resid_pdrop=0, attn_pdrop=0)
    old = gpt2.GPT(gpt2.GPTConfig(**shape)).eval()
    new = GPT(GPTConfig(**shape)).eval()
    state = {}
    for name, t in old.state_dict().items():
        if ".attn.c_attn." in name:
            state.update({name.replace("c_attn", p): w for p, w in zip(("q_proj", "k_proj", "v_proj"), t.chunk(3))})
        else:
            state[name.replace("attn.c_proj", "attn.o_proj")] = t
    new.load_state_dict(state)
    idx = torch.randint(0, 50, (2, 16))
    torch.testing.assert_close(new(idx)[0], old(idx)[0], rtol=0, atol=1e-5)
    assert new.num_parameters() == old.num_parameters()
    assert isinstance(new, gpt2.GPT) and "norm=layernorm" in repr(new)


@pytest.mark.parametrize("switches", [{}, dict(position="rope"), dict(LLAMA, n_kv_head=2, tie_embeddings=False),
                                      dict(LLAMA, n_kv_head=1)], ids=["gpt2", "rope", "llama-gqa", "llama-mqa"])
def test_cached_greedy_equals_the_naive_loop_past_block_size(switches):
    torch.manual_seed(0)
    model = GPT(GPTConfig(**TINY, **switches)).double()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3)
    prompt = torch.randint(0, 50, (2, 5))
    cached = model.generate(prompt, 30)
    assert torch.equal(cached, model.generate(prompt, 30, use_cache=False))
    assert torch.equal(torch.stack(list(model.stream(prompt, 30)), dim=1), cached[:, 5:])


def test_the_cache_holds_n_kv_heads():
    mha = GroupedKVCache(GPTConfig(**TINY), 2, "meta").nbytes()
    for kv in (1, 2, 4):
        c = GPTConfig(**TINY, n_kv_head=kv)
        assert GroupedKVCache(c, 2, "meta").nbytes() * c.n_head == mha * kv
    assert mha == 2 * 2 * 2 * 16 * 4 * 8 * 4  # 2 (k, v) x layers x batch x positions x heads x hs x 4 bytes
    model = GPT(GPTConfig(**TINY, n_kv_head=2))
    cache = model.new_kv_cache(1)
    model.forward_cached(torch.zeros(1, 16, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="the cache holds 16 positions"):
        model.decode_step(torch.zeros(1, dtype=torch.long), cache)


def test_the_trainer_trains_a_modern_model():
    from mingpt.trainer import Trainer, TrainerConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(**TINY, **LLAMA, n_kv_head=2))
    data = torch.arange(400) % 7  # a repeating pattern
    windows = [(data[i:i + 16], data[i + 1:i + 17]) for i in range(0, 380, 3)]
    trainer = Trainer(model, windows, None, TrainerConfig(max_iters=60, batch_size=16, learning_rate=3e-3,
                                                          progress=False, device="cpu"))
    trainer.train()
    with torch.no_grad():
        x, y = windows[0]
        assert model(x[None], y[None])[1].item() < 0.5


@pytest.mark.parametrize("bad, message", [
    (dict(norm="batchnorm"), "GPTConfig.norm must be one of"), (dict(n_kv_head=3), "must divide n_head=4"),
    (dict(n_kv_head=0), "must divide"), (dict(mlp_hidden=100), "sets SwiGLU's width"),
    (dict(position="rope", n_embd=36, n_head=4), "head size"), (dict(rope_theta=0.0), "must be positive")])
def test_bad_switches_are_refused_clearly(bad, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**{**TINY, **bad})
    with pytest.raises(TypeError, match="needs a mingpt.modern.GPTConfig"):
        GPT(gpt2.GPTConfig(**TINY))
