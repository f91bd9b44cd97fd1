"""A tiny, real training run for tests/test_resume.py (chapter 14 writes its own copy, which Colab can run): `python tests/train_tiny.py OUT [--resume]`.

Dropout on, gradient accumulation, a learning-rate schedule, several epochs, periodic checkpoints
in OUT/ckpt: everything a resume has to restore. Prints `step N` after each step; writes the final
weights to OUT/final.safetensors.
"""
import argparse
import time
from pathlib import Path

import torch

from mingpt.checkpoint import weights_to_bytes
from mingpt.data import CharDataset
from mingpt.model import GPT, GPTConfig
from mingpt import Trainer, TrainerConfig
from mingpt.utils import set_seed

TEXT = "to be, or not to be, that is the question: whether 'tis nobler in the mind to suffer. " * 4


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--resume", action="store_true", help="continue from OUT/ckpt")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to sleep after each step")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--lora", action="store_true", help="train LoRA adapters (chapter 15) instead of every weight")
    args = parser.parse_args()
    torch.set_num_threads(1)
    set_seed(1234)
    train = CharDataset(TEXT, block_size=8)
    test = CharDataset(TEXT[:100], block_size=8, chars=train.chars)
    model = GPT(GPTConfig(train.vocab_size, 8, n_layer=1, n_head=2, n_embd=16,
                          embd_pdrop=0.1, resid_pdrop=0.1, attn_pdrop=0.1))
    if args.lora:
        from mingpt.lora import apply_lora

        apply_lora(model, rank=2, alpha=4.0, dropout=0.1)  # adapter dropout: one more RNG for the resume
    args.out.mkdir(exist_ok=True)
    config = TrainerConfig(batch_size=8, grad_accum_steps=2, learning_rate=3e-3, lr_decay=True, warmup_tokens=500,
                           final_tokens=args.steps * 128, max_iters=args.steps, eval_interval=10, eval_iters=2,
                           ckpt_dir=str(args.out / "ckpt"), checkpoint_interval=4, device="cpu", progress=False,
                           resume_from=str(args.out / "ckpt") if args.resume else None)
    trainer = Trainer(model, train, test, config)

    def report(t: Trainer) -> None:
        print(f"step {t.iter_num} epoch {t.epoch}", flush=True)
        time.sleep(args.delay)

    trainer.add_callback("on_batch_end", report)
    trainer.train()
    (args.out / "final.safetensors").write_bytes(weights_to_bytes(model))
    print("done", flush=True)


if __name__ == "__main__":
    main()
