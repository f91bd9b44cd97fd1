"""Byte-level BPE (chapter 10): our trainer round-trips anything, and GPT-2's tokenizer equals tiktoken's."""
import os
from pathlib import Path

import pytest

from mingpt.bpe import GPT2_PATTERN, BPETokenizer, ByteBPE, pre_split, train_bpe

DATA = os.environ.get("MINGPT_DATA_DIR")
HAVE_GPT2 = bool(DATA) and (Path(DATA) / "gpt2" / "encoder.json").is_file() and (Path(DATA) / "gpt2" / "vocab.bpe").is_file()
needs_gpt2 = pytest.mark.skipif(not HAVE_GPT2, reason="needs $MINGPT_DATA_DIR/gpt2/{encoder.json,vocab.bpe}")

HARD = [
    "don't DON'T I'LL we've they're it's 'tis 's''ll",
    "  leading, trailing   ", "a    b\t\tc\n\n\nd \n e", " \n \t ",
    "naïve café e\u0301 Ñ ß ﬁ", "日本語の文章、中文字符。한국어 Ελληνικά русский",
    "🤗🎉👍🏽 👨‍👩‍👧 ✓", "12345 3.14159 1,000,000 ²³ Ⅻ ٣٤ x²",
    "\x00\x1c\x1f\x7f\u00a0\u3000\u2028\u0085 end", "<|endoftext|> hello", "x" * 200, "",
]


@pytest.fixture(scope="module")
def gpt2():
    return BPETokenizer()


@pytest.fixture(scope="module")
def tiktoken_gpt2():
    tiktoken = pytest.importorskip("tiktoken")
    import tiktoken.load
    ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=str(Path(DATA) / "gpt2" / "vocab.bpe"),
        encoder_json_file=str(Path(DATA) / "gpt2" / "encoder.json"))
    return tiktoken.Encoding(name="gpt2", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256})


def test_pre_split_matches_regex_module():
    regex = pytest.importorskip("regex")
    pattern = regex.compile(GPT2_PATTERN)
    for s in HARD:
        assert pre_split(s) == pattern.findall(s), s


def test_trained_bpe_round_trips_anything():
    text = "the cat sat on the mat; the hat, the bat. " * 20 + "naïve 🤗"
    merges = train_bpe(text, 256 + 40)
    assert 10 < len(merges) <= 40  # training stops early once every chunk is one token
    bpe = ByteBPE(merges)
    assert len(bpe.encode("the cat sat on the mat")) < len("the cat sat on the mat")
    every_byte = bytes(range(256)).decode("latin-1")
    for s in HARD + [every_byte, "\ud7ff\ue000\U0010ffff", "".join(map(chr, range(0x2000, 0x2100)))]:
        assert bpe.decode(bpe.encode(s)) == s, s
    assert all(i < bpe.vocab_size for i in bpe.encode(every_byte))


def test_train_is_a_prefix_and_validates():
    text = "abababab cdcdcd abcd " * 10
    assert train_bpe(text, 270)[:5] == train_bpe(text, 261)
    with pytest.raises(ValueError, match="at least 256"):
        train_bpe(text, 100)


def test_decode_rejects_unknown_ids():
    with pytest.raises(ValueError, match="not in this tokenizer's vocabulary"):
        ByteBPE([]).decode([300])


@needs_gpt2
def test_gpt2_equals_tiktoken_on_hard_strings(gpt2, tiktoken_gpt2):
    for s in HARD:
        ids = gpt2.encode(s)
        assert ids == tiktoken_gpt2.encode_ordinary(s), s
        assert gpt2.decode(ids) == s


@needs_gpt2
def test_gpt2_equals_tiktoken_on_shakespeare(gpt2, tiktoken_gpt2):
    from mingpt.data import tiny_shakespeare
    text = tiny_shakespeare()[:200_000]
    ids = gpt2.encode(text)
    assert ids == tiktoken_gpt2.encode_ordinary(text)
    assert gpt2.decode(ids) == text


@needs_gpt2
def test_gpt2_known_ids_and_call(gpt2):
    assert gpt2.encode("Hello, world!") == [15496, 11, 995, 0]
    assert gpt2.vocab_size == 50257 and gpt2.decode([50256]) == "<|endoftext|>"
    x = gpt2("Hello, world!")
    assert x.shape == (1, 4) and gpt2.decode(x[0]) == "Hello, world!"


def test_missing_gpt2_files_are_a_clear_error(tmp_path, monkeypatch):
    import urllib.request

    def offline(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setenv("MINGPT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MINGPT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(urllib.request, "urlretrieve", offline)
    with pytest.raises(FileNotFoundError, match="encoder.json"):
        BPETokenizer()
    with pytest.raises(FileNotFoundError, match="no file at"):
        BPETokenizer(encoder_json=tmp_path / "nope.json", vocab_bpe=tmp_path / "nope.bpe")
