import pytest
import torch

from mingpt.model import GPT, GPTConfig
from mingpt.utils import set_seed


def tiny_gpt(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, **kw) -> GPT:
    """A small GPT without dropout, seeded, in eval mode."""
    set_seed(0)
    cfg = GPTConfig(vocab_size, block_size, n_layer=n_layer, n_head=n_head, n_embd=n_embd,
                    embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0, **kw)
    return GPT(cfg).eval()


@pytest.fixture
def model() -> GPT:
    return tiny_gpt()


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(1)  # tiny models: one thread is fastest, and immune to a busy machine
