"""A tiny run for tests/test_ddp.py (chapter 14 writes its own copy), alone or under torchrun:

    python tests/train_ddp.py OUT --batch-size 16
    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/train_ddp.py OUT --batch-size 8

Rank 0 writes OUT/final.safetensors and OUT/history.json. No dropout: each rank would draw its own masks.
"""
import argparse
import json
from pathlib import Path

import torch

from mingpt.checkpoint import weights_to_bytes
from mingpt.data import CharDataset
from mingpt.distributed import cleanup
from mingpt.model import GPT, GPTConfig
from mingpt import Trainer, TrainerConfig
from mingpt.utils import set_seed

TEXT = "to be, or not to be, that is the question: whether 'tis nobler in the mind to suffer. " * 8


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--batch-size", type=int, required=True, help="per process")
    parser.add_argument("--grad-accum-steps", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--ckpt-dir", default=None, help="save a checkpoint every 10 steps here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    set_seed(0)  # the same on every rank: the same initial weights and data order
    train = CharDataset(TEXT, block_size=16)
    test = CharDataset(TEXT[:200], block_size=16, chars=train.chars)
    model = GPT(GPTConfig(train.vocab_size, 16, n_layer=2, n_head=2, n_embd=32,
                          embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0))
    config = TrainerConfig(batch_size=args.batch_size, grad_accum_steps=args.grad_accum_steps, learning_rate=3e-3,
                           max_iters=args.steps, eval_interval=10, eval_iters=2, device="cpu", progress=False,
                           ckpt_dir=args.ckpt_dir, checkpoint_interval=10 if args.ckpt_dir else None)
    args.out.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(model, train, test, config)
    trainer.train()
    print(trainer, "last checkpoint:", trainer.last_checkpoint, flush=True)
    if trainer.is_main:
        (args.out / "final.safetensors").write_bytes(weights_to_bytes(model))
        (args.out / "history.json").write_text(json.dumps(trainer.history))
    cleanup()


if __name__ == "__main__":
    main()
