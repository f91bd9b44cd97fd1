"""minGPT, the book's package: a GPT built chapter by chapter (see book/).

    from mingpt import GPT, GPTConfig, Trainer, TrainerConfig

gives every feature the book builds: the GPT of chapter 5 with the methods later chapters add
to it (`from_pretrained`/`save_pretrained` in chapter 11, `generate`/`stream` with the KV cache
in chapter 12), and the Trainer of chapter 14 (`mingpt.scale`), which extends chapter 13's
(`mingpt.fast`: mixed precision, compile), which extends chapter 6's (`mingpt.trainer`).

This file is the one module written by hand (the others are exported from the chapters). It
imports the chapters that add methods to `GPT`, so that `from mingpt.model import GPT` always
gives the whole class; chapter modules themselves import only earlier chapters' modules. It also
imports chapter 16's `mingpt.modern`, whose `benchmark_rows` the benchmark of chapter 13 finds,
chapter 17's `mingpt.llama`, which gives `mingpt.modern.GPT` its `from_pretrained`, and chapter 18's
`mingpt.instruct`, which keeps the weights that `generate`'s fast step reads with the model (so a
second call gathers nothing) and adds a chat's rows to the benchmark. `mingpt.chat` is not imported
here: `python -m mingpt.chat` runs it as a script; nor is chapter 19's `mingpt.diagnose`, which
changes nothing it does not own (`from mingpt.diagnose import ...`).
"""

__version__ = "0.5.0"  # 0.5: mingpt.diagnose and the expected results (chapter 19); 0.4: instruction tuning and
# a chat (chapter 18); 0.3: the modern recipe and Llama
# checkpoints (chapters 16, 17); 0.2: the Trainer split in three

from mingpt import hf, kvcache  # noqa: E402,F401  they add methods to GPT (mingpt.utils.add_to_class)
from mingpt.model import GPT, GPTConfig  # noqa: E402
from mingpt.scale import Trainer, TrainerConfig  # noqa: E402
from mingpt import llama, modern  # noqa: E402,F401  chapter 16's rows of `python -m mingpt.benchmark`; chapter 17's
# from_pretrained/save_pretrained for mingpt.modern.GPT (Llama checkpoints)
from mingpt import instruct  # noqa: E402,F401  chapter 18: GPT.new_kv_cache with kept decode weights; a chat's
# rows of the benchmark

__all__ = ["GPT", "GPTConfig", "Trainer", "TrainerConfig", "__version__"]
