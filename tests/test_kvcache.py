"""KV cache and generation features (chapter 12): the cached loop makes chapter 7's tokens, plus stop tokens,
streaming and clear errors. Tiny models; float64 where exact equality of greedy choices is asserted."""
import pytest
import torch

from mingpt.kvcache import KVCache, decode_step, forward_cached, generate, stream
from mingpt.utils import generate as generate_naive
from mingpt.utils import set_seed

from conftest import tiny_gpt


def tiny64(**kw):
    return tiny_gpt(**kw).double()


@pytest.mark.parametrize("shape, B, T, steps", [
    (dict(), 1, 1, 20),  # prompt of 1 token, generation crosses block_size 8
    (dict(), 3, 5, 6),  # stays within block_size
    (dict(n_layer=3, n_head=4, n_embd=32, vocab_size=50, block_size=12), 2, 3, 30),
    (dict(n_layer=1, n_head=1, n_embd=8, block_size=4), 2, 4, 9),  # prompt fills the block exactly
    (dict(), 2, 13, 7),  # prompt longer than block_size
])
def test_cached_greedy_equals_naive_loop(shape, B, T, steps):
    model = tiny64(**shape)
    idx = torch.randint(0, model.config.vocab_size, (B, T))
    naive = generate_naive(model, idx, steps)
    assert torch.equal(generate(model, idx, steps), naive)
    assert torch.equal(generate(model, idx, steps, use_cache=False), naive)
    assert torch.equal(model.generate(idx, steps), naive)


def test_cached_greedy_equals_naive_in_float32():
    model = tiny_gpt(n_embd=32, vocab_size=20, block_size=16)  # fp32; ties this close are rare
    idx = torch.randint(0, 20, (2, 2))
    assert torch.equal(model.generate(idx, 24), generate_naive(model, idx, 24))


def test_forward_cached_matches_forward():
    model = tiny64()
    tokens = torch.randint(0, 11, (2, 8))
    cache = KVCache(model.config, 2, dtype=torch.float64)
    with torch.no_grad():
        for a, b in [(0, 3), (3, 4), (4, 7), (7, 8)]:  # a prompt, one token, several after cached ones
            torch.testing.assert_close(forward_cached(model, tokens[:, a:b], cache), model(tokens[:, :b])[0][:, -1],
                                       rtol=0, atol=1e-12)
    assert cache.length == 8 and "8/8 positions" in repr(cache)
    with pytest.raises(ValueError, match="do not fit"):
        forward_cached(model, tokens[:, :1], cache)
    with pytest.raises(ValueError, match="cache is full"):
        decode_step(model, tokens[:, 0], cache)


@pytest.mark.parametrize("bias", [True, False])
def test_decode_step_matches_forward_cached(bias):
    model = tiny64(bias=bias)
    tokens = torch.randint(0, 11, (3, 8))
    a, b = KVCache(model.config, 3, dtype=torch.float64), KVCache(model.config, 3, dtype=torch.float64)
    with torch.no_grad():
        forward_cached(model, tokens[:, :2], a), forward_cached(model, tokens[:, :2], b)
        for t in range(2, 8):
            torch.testing.assert_close(decode_step(model, tokens[:, t], a), forward_cached(model, tokens[:, t:t + 1], b),
                                       rtol=0, atol=1e-12)


def test_decode_step_follows_the_model_it_is_given_and_checks_the_batch():
    first, second = tiny64(), tiny64()
    with torch.no_grad():
        for p in second.parameters():
            p.mul_(1.5)  # another model with the same shapes
    tokens = torch.randint(0, 11, (2, 4))
    cache, reference = KVCache(first.config, 2, dtype=torch.float64), KVCache(first.config, 2, dtype=torch.float64)
    forward_cached(first, tokens[:, :2], cache), forward_cached(first, tokens[:, :2], reference)
    decode_step(first, tokens[:, 2], cache)  # gathers the first model's weights (gradients on: no error)
    forward_cached(first, tokens[:, 2:3], reference)
    torch.testing.assert_close(decode_step(second, tokens[:, 3], cache),  # not the first model's weights
                               forward_cached(second, tokens[:, 3:4], reference), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="made for a batch of 2"):
        decode_step(first, tokens[:1, 0], cache)


@pytest.mark.parametrize("kwargs", [dict(top_k=3), dict(top_p=0.9, temperature=0.8), dict()])
def test_sampling_same_seed_same_tokens(kwargs):
    model = tiny64()
    idx = torch.randint(0, 11, (3, 2))
    set_seed(5)
    naive = generate_naive(model, idx, 15, do_sample=True, **kwargs)
    set_seed(5)
    cached = model.generate(idx, 15, do_sample=True, **kwargs)
    assert torch.equal(cached, naive)


def test_stop_tokens():
    model = tiny64()
    idx = torch.randint(0, 11, (4, 2))
    set_seed(1)
    full = generate_naive(model, idx, 12, do_sample=True)[:, 2:]  # (B, 12) without stop tokens
    stop = {int(full[0, 3]), int(full[1, 5])}  # row 0 ends at its 4th new token at the latest
    set_seed(1)
    out = model.generate(idx, 12, do_sample=True, stop_tokens=stop)[:, 2:]
    for row, new in zip(full, out):
        hits = [i for i, t in enumerate(row.tolist()) if t in stop]
        if hits:  # up to and including the first stop token as without stop tokens, then that token repeated
            end = hits[0] + 1
            assert torch.equal(new[:end], row[:end]) and (new[end:] == row[hits[0]]).all()
        else:
            assert torch.equal(new, row[:new.numel()])
    if all(any(t in stop for t in row.tolist()) for row in full):
        assert out.size(1) < 12  # every row ended: generation stopped early
    single = model.generate(idx[:1], 12, do_sample=False, stop_tokens=int(generate_naive(model, idx[:1], 1)[0, -1]))
    assert single.shape == (1, 3)  # a batch of one ends right at its stop token


def test_stream_yields_the_tokens_of_generate():
    model = tiny64()
    idx = torch.randint(0, 11, (2, 3))
    tokens = list(model.stream(idx, 10))
    assert len(tokens) == 10 and all(t.shape == (2,) for t in tokens)
    assert torch.equal(torch.stack(tokens, dim=1), model.generate(idx, 10)[:, 3:])
    seen = []
    model.generate(idx, 4, callback=lambda t: seen.append(t.clone()))
    assert torch.equal(torch.stack(seen, 1), torch.stack(tokens[:4], 1))
    assert len(list(stream(model, idx, 5, stop_tokens=list(range(11))))) == 1  # every token stops


def test_generate_restores_mode_and_edge_cases():
    model = tiny64().train()
    idx = torch.randint(0, 11, (1, 2))
    assert torch.equal(model.generate(idx, 0), idx)
    assert model.generate(idx, 3).shape == (1, 5) and model.training
    it = model.stream(idx, 3)
    next(it)
    assert not model.training  # eval while streaming
    list(it)
    assert model.training


@pytest.mark.parametrize("call, error, message", [
    (lambda m: m.generate(torch.zeros(3, dtype=torch.long), 2), ValueError, r"idx\[None, :\]"),
    (lambda m: m.generate(torch.zeros(1, 0, dtype=torch.long), 2), ValueError, "at least one token"),
    (lambda m: m.generate(torch.zeros(1, 2), 2), TypeError, "integer tensor"),
    (lambda m: m.generate(torch.full((1, 2), 11), 2), ValueError, r"token ids must be in \[0, 11\)"),
    (lambda m: m.generate(torch.zeros(1, 2, dtype=torch.long), -1), ValueError, "max_new_tokens"),
    (lambda m: m.generate(torch.zeros(1, 2, dtype=torch.long), 2, temperature=0), ValueError, "temperature"),
    (lambda m: m.generate(torch.zeros(1, 2, dtype=torch.long), 2, stop_tokens=11), ValueError, "stop_tokens"),
    (lambda m: m.generate(torch.zeros(1, 2, dtype=torch.long), 2, stop_tokens=[]), ValueError, "empty"),
    (lambda m: m.stream(torch.zeros(1, 2, dtype=torch.long), 2, top_k=0), ValueError, "top_k"),  # at once
])
def test_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(tiny64())
