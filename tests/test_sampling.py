"""Sampling: greedy, the filters, the seed API, cropping past block_size, clear errors."""
import pytest
import torch

from mingpt.utils import generate, sample, set_seed, top_k_logits, top_p_logits


def naive_greedy(model, idx, steps):
    for _ in range(steps):
        logits, _ = model(idx[:, -model.get_block_size():])
        idx = torch.cat([idx, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return idx


def test_greedy_matches_naive_loop_past_block_size(model):
    idx = torch.randint(0, 11, (2, 3))
    out = model.generate(idx, 20)  # 23 tokens, block_size 8: cropping happens
    assert out.shape == (2, 23) and torch.equal(out[:, :3], idx)
    assert torch.equal(out, naive_greedy(model, idx, 20))


def test_seed_api_equals_generate(model):
    x = torch.tensor([1, 2, 3], dtype=torch.long)[None, ...]
    set_seed(3)
    a = sample(model, x, steps=10, temperature=1.0, sample=True, top_k=5)
    set_seed(3)
    b = model.generate(x, 10, temperature=1.0, do_sample=True, top_k=5)
    assert torch.equal(a, b)


def test_generate_restores_training_mode(model):
    model.train()
    generate(model, torch.zeros(1, 1, dtype=torch.long), 2)
    assert model.training


def test_top_k_and_top_p():
    logits = torch.tensor([[1.0, 4.0, 3.0, 2.0]])
    assert torch.isinf(top_k_logits(logits, 2)).tolist() == [[True, False, False, True]]
    probs = torch.softmax(logits, -1)[0]  # 0.032, 0.644, 0.237, 0.087
    kept = ~torch.isinf(top_p_logits(logits, 0.8))
    assert kept.tolist() == [[False, True, True, False]]
    assert (~torch.isinf(top_p_logits(logits, float(probs[1]) - 1e-4))).sum() == 1
    assert (~torch.isinf(top_p_logits(logits, 1.0))).all()


@pytest.mark.parametrize("kwargs, message", [
    (dict(temperature=0.0), "temperature must be > 0"),
    (dict(top_k=0), "top_k must be an int >= 1"),
    (dict(top_p=0.0), r"top_p must be in \(0, 1\]"),
    (dict(top_p=1.5), r"top_p must be in \(0, 1\]"),
])
def test_bad_sampling_arguments(model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        model.generate(torch.zeros(1, 1, dtype=torch.long), 3, **kwargs)


@pytest.mark.parametrize("use_cache", [None, False, True])  # None: chapter 7's mingpt.utils.generate
def test_an_interrupted_generation_leaves_the_model_in_training_mode(model, use_cache):
    model.train()

    def interrupt(*args):
        raise KeyboardInterrupt  # as a Ctrl-C in the middle of generating

    model.transformer.wte.forward = interrupt  # the first thing every path runs
    with pytest.raises(KeyboardInterrupt):
        if use_cache is None:
            generate(model, torch.zeros(1, 2, dtype=torch.long), 5)
        else:
            model.generate(torch.zeros(1, 2, dtype=torch.long), 5, use_cache=use_cache)
    assert model.training
