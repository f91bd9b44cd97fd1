"""Datasets and the data helper."""
import hashlib
import os

import pytest
import torch

from mingpt.data import AdditionDataset, CharDataset, fetch, tiny_shakespeare, train_val_split


def test_char_dataset_windows():
    ds = CharDataset("hello world", block_size=4)
    assert len(ds) == 7 and ds.vocab_size == len(set("hello world"))
    for i in range(len(ds)):
        x, y = ds[i]
        assert ds.decode(x) == "hello world"[i:i + 4] and ds.decode(y) == "hello world"[i + 1:i + 5]
    assert ds.decode(ds.encode("low")) == "low"


@pytest.mark.parametrize("text, block_size, message", [
    ("", 4, "empty text"),
    ("abc", 4, "needs at least 5"),
    ("abcdef", 0, "block_size must be a positive int"),
])
def test_char_dataset_bad_input(text, block_size, message):
    with pytest.raises(ValueError, match=message):
        CharDataset(text, block_size)


def test_char_dataset_unknown_characters():
    with pytest.raises(ValueError, match="outside the vocabulary"):
        CharDataset("abcdz", 2, chars="abcd")
    with pytest.raises(ValueError, match="not in this dataset's vocabulary"):
        CharDataset("abcd", 2).encode("e")


@pytest.mark.parametrize("reverse", [False, True])
def test_addition_dataset_round_trip(reverse):
    for split in ("train", "test"):
        ds = AdditionDataset(2, split, reverse=reverse)
        for i in range(0, len(ds), 97):
            a, b = ds.problem(i)
            x, y = ds[i]
            full = torch.cat([x, y[-1:]])
            assert ds.decode_sum(full[4:]) == a + b
            assert (y[:3] == -100).all() and (y[3:] >= 0).all()
    train, test = AdditionDataset(2, "train"), AdditionDataset(2, "test")
    assert len(test) == 1000 and len(train) == 9000
    assert not set(train.ixes.tolist()) & set(test.ixes.tolist())


def test_seed_encoding_examples():
    ds = AdditionDataset(2, "train")
    assert ds.encode(85, 50) == [8, 5, 5, 0, 1, 3, 5]
    assert ds.encode(6, 39) == [0, 6, 3, 9, 0, 4, 5]


def test_train_val_split_is_contiguous():
    train, val = train_val_split("abcdefghij", 0.2)
    assert (train, val) == ("abcdefgh", "ij")
    with pytest.raises(ValueError, match="between 0 and 1"):
        train_val_split("abc", 1.0)


def test_fetch_checks_the_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("MINGPT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MINGPT_DATA_DIR", raising=False)
    f = tmp_path / "x.txt"
    f.write_text("hello")
    good = hashlib.sha256(b"hello").hexdigest()
    assert fetch("x.txt", "http://invalid.invalid/x", good, f) == f
    with pytest.raises(ValueError, match="sha256"):
        fetch("x.txt", "http://invalid.invalid/x", "0" * 64, f)
    with pytest.raises(FileNotFoundError, match="no file at"):
        fetch("x.txt", "http://invalid.invalid/x", good, tmp_path / "missing.txt")


@pytest.mark.skipif(not os.environ.get("MINGPT_DATA_DIR"), reason="needs the offline data folder")
def test_tiny_shakespeare_from_the_data_folder():
    text = tiny_shakespeare()
    assert len(text) == 1_115_394 and text.startswith("First Citizen:")


def test_bigram_baseline_by_hand():
    import math

    from mingpt.bigram import bigram_val_loss

    # add-one smoothed counts of 0 1 2 1 0: p(2 | 1) = 2/5, p(0 | 2) = 1/4
    loss = bigram_val_loss(torch.tensor([0, 1, 2, 1, 0]), torch.tensor([1, 2, 0]), 3)
    assert math.isclose(loss, -(math.log(2 / 5) + math.log(1 / 4)) / 2, rel_tol=1e-12)


def test_an_explicit_path_that_is_missing_is_an_error_even_with_other_copies(tmp_path, monkeypatch):
    """A typo in `path` must not silently fall back to $MINGPT_DATA_DIR or the cache."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "x.txt").write_text("hello")
    monkeypatch.setenv("MINGPT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("MINGPT_CACHE", str(tmp_path / "cache"))
    good = hashlib.sha256(b"hello").hexdigest()
    assert fetch("x.txt", "http://invalid.invalid/x", good) == data_dir / "x.txt"
    with pytest.raises(FileNotFoundError, match=r"no file at .*typo\.txt; expected x\.txt there"):
        fetch("x.txt", "http://invalid.invalid/x", good, tmp_path / "typo.txt")
