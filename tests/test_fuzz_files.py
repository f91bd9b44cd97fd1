"""Damaged and foreign files, through every loader: truncated, zeroed, flipped, junk, swapped between formats,
a pickle. Each load either succeeds (a change the format cannot see, e.g. flipped bytes inside the tensors of a
Hugging Face folder, which has no checksum) or raises a CheckpointError or FileNotFoundError that names the file;
never a bare UnicodeDecodeError, KeyError, SafetensorError or UnpicklingError from deep inside a library."""
import pickle
import random
import shutil
from pathlib import Path

import pytest

from conftest import tiny_gpt
from mingpt import Trainer, TrainerConfig
from mingpt.checkpoint import latest_checkpoint, load_checkpoint, load_model
from mingpt.data import CharDataset
from mingpt.hf import CheckpointError, load_pretrained, save_pretrained

TEXT = "hello world, hello minGPT. " * 8


def mutations(data: bytes, other: bytes, rng: random.Random) -> dict[str, bytes]:
    flipped, header = bytearray(data), bytearray(data)
    for i in rng.sample(range(len(data)), min(16, len(data))):
        flipped[i] ^= 0xFF
    for i in range(min(64, len(data))):
        header[i] ^= rng.randrange(1, 256)
    return {"empty": b"", "half": data[: len(data) // 2], "one byte short": data[:-1], "zeroed": bytes(len(data)),
            "16 bytes flipped": bytes(flipped), "header garbled": bytes(header),
            "junk": bytes(rng.randrange(256) for _ in range(max(len(data), 1))), "another file": other,
            "a pickle": pickle.dumps({"weights": [1, 2, 3]}), "binary junk, short": b"\x80\xff\x00\x13junk\xfe"}


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    ds = CharDataset(TEXT, block_size=8)
    t = Trainer(tiny_gpt(vocab_size=ds.vocab_size), ds, None,
                TrainerConfig(max_iters=2, device="cpu", progress=False, ckpt_dir=str(root / "ck")))
    t.train()
    save_pretrained(tiny_gpt(vocab_size=ds.vocab_size), root / "hf")
    return root, ds


def loaders(ds):
    return {
        "load_checkpoint": lambda d: load_checkpoint(d / "ck"),
        "load_model": lambda d: load_model(d / "ck"),
        "resume_from": lambda d: Trainer(tiny_gpt(vocab_size=ds.vocab_size), ds, None,
                                         TrainerConfig(device="cpu", progress=False, resume_from=str(d / "ck"))),
        "from_pretrained": lambda d: load_pretrained(d / "hf"),
    }


def test_every_damaged_file_through_every_loader_is_a_clear_error_or_loads(originals, tmp_path):
    root, ds = originals
    rng = random.Random(0)
    step = latest_checkpoint(root / "ck").relative_to(root)
    files = {"ck": [step / "model.safetensors", step / "trainer.pt", step / "config.json", Path("ck") / "latest"],
             "hf": [Path("hf") / "model.safetensors", Path("hf") / "config.json"]}
    results = {"raised": 0, "loaded": 0}
    loaded = []
    for kind, names in files.items():
        for name in names:
            others = [n for n in names if n != name]
            for what, data in mutations((root / name).read_bytes(), (root / others[0]).read_bytes(), rng).items():
                work = tmp_path / f"{kind}-{name.name}-{what}".replace(" ", "_")
                shutil.copytree(root, work)
                (work / name).write_bytes(data)
                for loader, load in loaders(ds).items():
                    if (loader == "from_pretrained") != (kind == "hf"):
                        continue
                    try:
                        load(work)
                    except (CheckpointError, FileNotFoundError) as e:
                        assert name.name in str(e) or str(work / name.parent) in str(e), \
                            f"{loader}, {name} {what}: the error does not name the file: {e}"
                        results["raised"] += 1
                    else:
                        results["loaded"] += 1
                        loaded.append((loader, str(name), what))
    print(results, loaded)
    # a training checkpoint's weights and state are checksummed: any change to them is caught
    assert not [x for x in loaded if x[1].endswith(("model.safetensors", "trainer.pt")) and x[0] != "from_pretrained"]
    # a damaged `latest` pointer falls back to the newest complete step, which loads
    assert {w for l, n, w in loaded if n.endswith("latest")} == set(mutations(b"x", b"y", rng))
    assert results["raised"] > 60


def test_hf_pickled_weights_are_refused_with_the_files_name(originals, tmp_path):
    root, _ = originals
    work = tmp_path / "hf"
    shutil.copytree(root / "hf", work)
    (work / "model.safetensors").unlink()

    class Evil:
        def __reduce__(self):
            return (print, ("ran code",))

    (work / "pytorch_model.bin").write_bytes(pickle.dumps({"transformer.wte.weight": Evil()}))
    with pytest.raises(CheckpointError, match=r"pytorch_model.bin: refused to load.*pickle runs code"):
        load_pretrained(work)


def test_a_checkpoint_missing_the_tied_embedding_names_the_file():
    import json as _json

    from safetensors.torch import save

    from mingpt.checkpoint import weights_from_bytes, weights_to_bytes

    model = tiny_gpt()
    tensors = {k: v.contiguous() for k, v in model.state_dict().items() if k not in ("transformer.wte.weight",
                                                                                     "lm_head.weight")}
    data = save(tensors, metadata={"format": "pt", "aliases": _json.dumps({"lm_head.weight": "transformer.wte.weight"})})
    with pytest.raises(CheckpointError, match=r"step_7/model.safetensors is not a readable safetensors file.*KeyError"):
        weights_from_bytes(data, source="step_7/model.safetensors")
    assert set(weights_from_bytes(weights_to_bytes(model))) == set(model.state_dict())  # the intact one loads
