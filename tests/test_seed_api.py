"""The 2020 minGPT article's API, unchanged, learns 2-digit addition."""
import time

import torch

from mingpt.data import AdditionDataset
from mingpt.utils import set_seed


def exam(model, dataset):
    """Greedy answers for every problem of `dataset`; the number answered right."""
    from mingpt.utils import sample

    nd = dataset.ndigit
    correct = 0
    x = torch.stack([dataset[i][0][: 2 * nd] for i in range(len(dataset))])
    out = sample(model, x, steps=nd + 1)
    for i in range(len(dataset)):
        a, b = dataset.problem(i)
        correct += dataset.decode_sum(out[i, 2 * nd:]) == a + b
    return correct


def test_article_snippet_learns_addition():
    from mingpt.model import GPT, GPTConfig
    from mingpt.trainer import Trainer, TrainerConfig
    from mingpt.utils import sample

    set_seed(42)
    train_dataset, test_dataset = AdditionDataset(2, "train"), AdditionDataset(2, "test")
    mconf = GPTConfig(train_dataset.vocab_size, train_dataset.block_size, n_layer=2, n_head=4, n_embd=128)
    model = GPT(mconf)
    tconf = TrainerConfig(max_epochs=14, batch_size=256, learning_rate=1e-3, lr_decay=True,
                          warmup_tokens=1024, final_tokens=14 * len(train_dataset) * 3, device="cpu",
                          progress=False)
    trainer = Trainer(model, train_dataset, test_dataset, tconf)
    start = time.time()
    trainer.train()
    print(f"trained in {time.time() - start:.1f} s")
    assert model.get_block_size() == 6

    x = torch.tensor([1, 2, 3, 4], dtype=torch.long)[None, ...]
    y = sample(model, x, steps=30, temperature=1.0, sample=True, top_k=5)[0]  # grows past block_size
    assert y.shape == (34,)

    correct = exam(model, test_dataset)
    print(f"{correct}/{len(test_dataset)} held-out sums right")
    assert correct >= 950
