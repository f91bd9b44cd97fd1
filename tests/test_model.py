"""The model: shapes, causality, the two attention paths, the loss, sizes, and clear errors."""
import math

import pytest
import torch
import torch.nn.functional as F

from mingpt.model import GPT, GPTConfig
from conftest import tiny_gpt

CONFIGS = [dict(n_layer=1, n_head=1, n_embd=8), dict(n_layer=2, n_head=2, n_embd=16),
           dict(n_layer=3, n_head=4, n_embd=32, bias=False)]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_shapes_and_loss(cfg):
    m = tiny_gpt(**cfg)
    idx = torch.randint(0, 11, (3, 8))
    logits, loss = m(idx, idx)
    assert logits.shape == (3, 8, 11)
    assert loss.ndim == 0 and math.isfinite(loss.item())
    assert m(idx)[1] is None


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("use_sdpa", [True, False])
def test_future_tokens_cannot_change_the_past(cfg, use_sdpa):
    m = tiny_gpt(use_sdpa=use_sdpa, **cfg)
    torch.manual_seed(1)
    idx = torch.randint(0, 11, (2, 8))
    base = m(idx)[0]
    for t in range(8):
        changed = idx.clone()
        changed[:, t] = (changed[:, t] + 1) % 11
        out = m(changed)[0]
        torch.testing.assert_close(out[:, :t], base[:, :t], rtol=0, atol=1e-6)
        assert not torch.allclose(out[:, t], base[:, t])  # the changed position itself does move


def test_sdpa_equals_explicit_attention():
    a, b = tiny_gpt(use_sdpa=True, n_layer=3, n_head=4, n_embd=32), tiny_gpt(use_sdpa=False, n_layer=3, n_head=4, n_embd=32)
    b.load_state_dict(a.state_dict())
    idx = torch.randint(0, 11, (4, 8))
    torch.testing.assert_close(a(idx)[0], b(idx)[0], rtol=0, atol=1e-5)


def test_loss_ignores_minus_100(model):
    idx = torch.randint(0, 11, (2, 8))
    targets = idx.clone()
    targets[:, :5] = -100
    logits, loss = model(idx, targets)
    by_hand = F.cross_entropy(logits[:, 5:].reshape(-1, 11), targets[:, 5:].reshape(-1))
    torch.testing.assert_close(loss, by_hand)


def test_untrained_loss_is_near_uniform(model):
    idx, targets = torch.randint(0, 11, (8, 8)), torch.randint(0, 11, (8, 8))
    assert abs(model(idx, targets)[1].item() - math.log(11)) < 0.2


@pytest.mark.parametrize("V,T,L,C", [(11, 8, 2, 16), (65, 64, 4, 128), (50257, 1024, 1, 48)])
def test_parameter_count_formula(V, T, L, C):
    m = GPT(GPTConfig(V, T, n_layer=L, n_head=4, n_embd=C))
    assert m.num_parameters() == V * C + T * C + L * (12 * C * C + 13 * C) + 2 * C
    assert m.transformer.wte.weight is m.lm_head.weight


def test_optimizer_groups_cover_every_parameter_once(model):
    from mingpt.trainer import TrainerConfig

    opt = model.configure_optimizers(TrainerConfig())
    seen = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(seen) == len(set(seen)) == len(list(model.parameters()))
    decayed = {id(p) for p in opt.param_groups[0]["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in decayed) == (p.dim() == 2 and "wpe" not in name), name


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_embd=10, n_head=3), "divisible"),
    (dict(n_layer=0), "n_layer must be a positive int"),
    (dict(n_embd=-4), "n_embd must be a positive int"),
    (dict(attn_pdrop=1.0), "attn_pdrop"),
    (dict(resid_pdrop=-0.1), "resid_pdrop"),
])
def test_bad_config_is_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(11, 8, **kwargs)


def test_unknown_config_field_is_an_error():
    with pytest.raises(TypeError, match="n_layers"):
        GPTConfig(11, 8, n_layers=2)


@pytest.mark.parametrize("idx, error, message", [
    (torch.zeros(2, 8), TypeError, "integer tensor"),
    (torch.zeros(8, dtype=torch.long), ValueError, r"idx\[None, :\]"),
    (torch.zeros(1, 9, dtype=torch.long), ValueError, "longer than block_size=8"),
])
def test_bad_input_is_a_clear_error(model, idx, error, message):
    with pytest.raises(error, match=message):
        model(idx)


@pytest.mark.parametrize("ids", [torch.full((1, 4), 11), torch.full((1, 4), -1)])
def test_ids_out_of_range_are_a_clear_error_where_they_enter(model, ids):
    from mingpt.utils import check_token_ids, generate

    for call in (lambda: check_token_ids(ids, 11), lambda: model.generate(ids, 1), lambda: generate(model, ids, 1),
                 lambda: model.generate(ids, 1, use_cache=False)):
        with pytest.raises(ValueError, match=r"token ids must be in \[0, 11\)"):
            call()


def test_forward_checks_shapes_only_and_never_reads_the_ids():
    """A meta tensor has a shape and no values: a forward that read the ids (idx.min(), a sync on a GPU) fails."""
    model = GPT(GPTConfig(11, 8, n_layer=1, n_head=2, n_embd=8)).to("meta")
    logits, _ = model(torch.zeros(2, 8, dtype=torch.long, device="meta"))
    assert logits.shape == (2, 8, 11) and logits.device.type == "meta"
    with pytest.raises(ValueError, match="longer than block_size=8"):
        model(torch.zeros(2, 9, dtype=torch.long, device="meta"))
    reading = lambda idx: bool(idx.min() < 0)  # what the old forward did  # noqa: E731
    with pytest.raises((RuntimeError, NotImplementedError)):
        reading(torch.zeros(2, 8, dtype=torch.long, device="meta"))  # so the test above can fail


def test_wrong_target_shape_is_a_clear_error(model):
    with pytest.raises(ValueError, match="targets must have the shape"):
        model(torch.zeros(2, 8, dtype=torch.long), torch.zeros(2, 7, dtype=torch.long))


def test_flops_formula_matches_counted_flops():
    from torch.utils.flop_counter import FlopCounterMode

    m = tiny_gpt(vocab_size=65, block_size=32, n_layer=2, n_head=4, n_embd=64, use_sdpa=False).train()
    idx = torch.randint(0, 65, (2, 32))
    with FlopCounterMode(display=False) as counter:
        m(idx, idx)[1].backward()
    counted = counter.get_total_flops() / idx.numel()
    assert abs(counted - m.flops_per_token()) / counted < 0.03
