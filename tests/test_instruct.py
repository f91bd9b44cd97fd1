"""Chapter 18: chat templates, answer masks, padding that changes nothing, batched generation, the chat."""
import copy
import importlib.util
import json
import subprocess
import sys

import pytest
import torch

import mingpt.modern as modern
from mingpt.chat import CHATML_JINJA, ChatSession, chat_loop, load_chat_model, main, save_chat_model
from mingpt.hf import CheckpointError
from mingpt.instruct import (CHATML, IGNORE, ChatTemplate, encode_chat, generate_batch, instruction_tune,
                             length_grouped_batches, pad_right, padded_forward, padded_positions, padding_fraction,
                             template_from_tokenizer_config, word_f1)
from mingpt.llama import chat_prompt, load_tokenizer_json
from mingpt.model import GPT, GPTConfig

HAVE_HF = importlib.util.find_spec("transformers") is not None and importlib.util.find_spec("tokenizers") is not None
needs_hf = pytest.mark.skipif(not HAVE_HF, reason="transformers and tokenizers are not installed")


def char_encode(text: str) -> list[int]:
    """A stand-in tokenizer for the mask tests: ChatML's markers as ids 1 and 2, every other character its code."""
    out, i = [], 0
    while i < len(text):
        for marker, tid in (("<|im_start|>", 1), ("<|im_end|>", 2)):
            if text.startswith(marker, i):
                out.append(tid)
                i += len(marker)
                break
        else:
            out.append(3 + ord(text[i]) % 120)
            i += 1
    return out


def tiny(kind: str, vocab: int = 128, block: int = 64, seed: int = 0):
    torch.manual_seed(seed)
    if kind == "gpt2":
        return GPT(GPTConfig(vocab, block, n_layer=2, n_head=4, n_embd=32)).eval()
    return modern.GPT(modern.GPTConfig(vocab, block, n_layer=2, n_head=4, n_embd=32, n_kv_head=2,
                                       **modern.LLAMA_RECIPE)).eval()


CONVERSATION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"},
                {"role": "assistant", "content": "Ciao"}]


def test_encode_chat_masks_exactly_the_answers_and_their_end_of_turn():
    ids, mask = encode_chat(char_encode, CONVERSATION)
    assert ids == char_encode(chat_prompt(CONVERSATION, add_generation_prompt=False))
    assert [i for i, m in zip(ids, mask) if m] == char_encode("Hello<|im_end|>Ciao<|im_end|>")
    ids, mask = encode_chat(char_encode, CONVERSATION[:2])  # no answer: nothing to learn
    assert not any(mask)


def test_encode_chat_refuses_a_template_that_never_ends_a_turn():
    broken = ChatTemplate("broken", lambda m, g: chat_prompt(m, g).replace("<|im_end|>", ""), "<|im_end|>")
    with pytest.raises(ValueError, match="cannot be found"):
        encode_chat(char_encode, CONVERSATION, broken)


def test_template_from_tokenizer_config_renders_chatml_and_names_what_is_missing(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": CHATML_JINJA, "eos_token": "<|im_end|>"}))
    template = template_from_tokenizer_config(tmp_path)
    for gen in (True, False):
        assert template.render(CONVERSATION, gen) == chat_prompt(CONVERSATION, gen)
    assert template.end_of_turn == "<|im_end|>"
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
    with pytest.raises(CheckpointError, match="no chat_template"):
        template_from_tokenizer_config(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="tokenizer_config.json"):
        template_from_tokenizer_config(tmp_path)


@needs_hf
def test_jinja_template_matches_transformers_apply_chat_template(tmp_path):
    import transformers
    from tokenizers import Tokenizer, models

    template_text = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                     "{{ '<|im_start|>system\nYou are helpful<|im_end|>\n' }}{% endif %}"
                     "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
                     "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": template_text, "eos_token": "<|im_end|>"}))
    ours = template_from_tokenizer_config(tmp_path)
    hf = transformers.PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE()))
    for messages in (CONVERSATION[1:], CONVERSATION):
        for gen in (True, False):
            assert ours.render(messages, gen) == hf.apply_chat_template(messages, chat_template=template_text,
                                                                       tokenize=False, add_generation_prompt=gen)


def test_right_padding_changes_neither_loss_nor_gradients():
    model = tiny("llama", block=128)
    short, long = encode_chat(char_encode, CONVERSATION[1:3]), encode_chat(char_encode, CONVERSATION)

    def first_row(examples):
        x, y = pad_right(examples, pad_id=0)
        model.zero_grad()
        logits, _ = model(x)
        loss = torch.nn.functional.cross_entropy(logits[0], y[0], ignore_index=IGNORE)
        loss.backward()
        return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()])

    (a, ga), (b, gb) = first_row([short]), first_row([short, long])
    assert abs(a - b) < 1e-6 and torch.allclose(ga, gb, atol=1e-6)
    x, y = pad_right([short, long], pad_id=0)
    assert (y[0, len(short[0]) - 1:] == IGNORE).all()  # padding is never a target
    x, y_all = pad_right([short], pad_id=0, answer_only=False)
    assert (y_all != IGNORE).sum() == len(short[0]) - 1


def test_length_grouping_keeps_every_example_and_cuts_padding():
    lengths = [int(n) for n in torch.randint(5, 300, (800,), generator=torch.Generator().manual_seed(0))]
    grouped = length_grouped_batches(lengths, 16, seed=1)
    assert sorted(i for b in grouped for i in b) == list(range(800))
    random_batches = [list(range(i, min(i + 16, 800))) for i in range(0, 800, 16)]
    assert padding_fraction(grouped, lengths) < padding_fraction(random_batches, lengths) / 3
    assert length_grouped_batches(lengths, 16, seed=2) != grouped  # another order each epoch


def test_padded_positions_start_at_each_rows_first_real_token():
    mask = torch.tensor([[False, False, True, True], [True, True, True, True]])
    assert padded_positions(mask).tolist() == [[0, 0, 0, 1], [0, 1, 2, 3]]


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
@pytest.mark.parametrize("use_cache", [True, False])
def test_batched_generation_equals_one_prompt_at_a_time(kind, use_cache):
    model = tiny(kind)
    g = torch.Generator().manual_seed(3)
    prompts = [torch.randint(3, 128, (n,), generator=g).tolist() for n in (5, 17, 1, 9)]
    alone = [model.generate(torch.tensor([p]), 12)[0, len(p):].tolist() for p in prompts]
    assert generate_batch(model, prompts, 12, use_cache=use_cache) == alone


def test_batched_generation_stops_each_row_at_its_own_stop_token():
    model = tiny("llama")
    prompts = [[5, 6, 7], [9, 9, 9, 9, 9, 9]]
    free = generate_batch(model, prompts, 10)
    stop = free[0][2]
    stopped = generate_batch(model, prompts, 10, stop_tokens=[stop])
    assert stopped[0] == free[0][:free[0].index(stop) + 1]
    assert stopped[1] == (free[1][:free[1].index(stop) + 1] if stop in free[1] else free[1])


def test_generate_batch_names_bad_input():
    model = tiny("gpt2")
    with pytest.raises(ValueError, match="block_size"):
        generate_batch(model, [[1] * 60], 10)
    with pytest.raises(ValueError, match="prompt 1 holds 500"):
        generate_batch(model, [[1, 2], [500]], 4)
    with pytest.raises(ValueError, match="non-empty"):
        generate_batch(model, [[1], []], 4)


@needs_hf
def test_batched_generation_matches_transformers_generate_with_attention_mask(tmp_path):
    import transformers

    from mingpt.hf import load_pretrained

    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=100,
                                                              n_positions=48, bos_token_id=0, eos_token_id=0)).eval()
    hf.save_pretrained(tmp_path)
    ours = load_pretrained(tmp_path).eval()
    prompts = [[5, 6, 7], [1, 2, 3, 4, 5, 6, 7, 8], [9]]
    T0 = max(map(len, prompts))
    ids = torch.tensor([[0] * (T0 - len(p)) + p for p in prompts])
    attention_mask = torch.arange(T0)[None] >= torch.tensor([T0 - len(p) for p in prompts])[:, None]
    theirs = hf.generate(ids, attention_mask=attention_mask.long(), max_new_tokens=12, do_sample=False,
                         pad_token_id=0)[:, T0:].tolist()
    assert generate_batch(ours, prompts, 12) == theirs
    with torch.no_grad():
        a = hf(ids, attention_mask=attention_mask.long(), position_ids=padded_positions(attention_mask)).logits
        b = padded_forward(ours, ids, attention_mask)
    assert (a - b)[attention_mask].abs().max() < 1e-4


def test_instruction_tune_learns_an_answer_and_refuses_too_long_examples():
    model = tiny("llama", block=32)
    examples = [encode_chat(char_encode, [{"role": "user", "content": "ping"}, {"role": "assistant", "content": "pong"}])]
    losses = instruction_tune(model, examples * 8, 100, pad_id=0, batch_size=8, lr=1e-2, progress=False)
    assert losses[-1] < losses[0] / 4
    prompt = char_encode(chat_prompt([{"role": "user", "content": "ping"}]))
    assert generate_batch(model, [prompt], 6, stop_tokens=[2]) == [char_encode("pong<|im_end|>")]
    with pytest.raises(ValueError, match="longer than block_size"):
        instruction_tune(model, [(list(range(40)), [True] * 40)], 1, pad_id=0, progress=False)


def test_word_f1():
    assert word_f1("The capital is Rome.", "Rome is the capital") == 1.0
    assert word_f1("Paris", "Rome") == 0.0
    assert 0 < word_f1("Rome, Italy", "Rome") < 1
    assert word_f1("", "") == 1.0


@pytest.fixture(scope="module")
def chat_folder(tmp_path_factory):
    if not HAVE_HF:
        pytest.skip("training a tokenizer.json needs the tokenizers library")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    folder = tmp_path_factory.mktemp("chat")
    trained = Tokenizer(models.BPE())
    trained.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trained.decoder = decoders.ByteLevel()
    trained.train_from_iterator(["hello there, how are you? fine, thanks."] * 20, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    trained.save(str(folder / "trained.json"))
    tok = load_tokenizer_json(folder / "trained.json")
    model = tiny("llama", vocab=tok.vocab_size, block=96)
    return save_chat_model(model, folder / "trained.json", folder / "model"), model


def test_chat_model_round_trip_and_transformers_reads_it(chat_folder):
    folder, model = chat_folder
    loaded, tok, template = load_chat_model(folder)
    assert template.end_of_turn == "<|im_end|>" and template.render(CONVERSATION, True) == chat_prompt(CONVERSATION)
    idx = torch.tensor([tok.encode(chat_prompt(CONVERSATION[1:2]))])
    assert torch.equal(loaded(idx)[0], model(idx)[0])
    import transformers
    hf_tok = transformers.AutoTokenizer.from_pretrained(folder)
    assert hf_tok.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True) == chat_prompt(CONVERSATION)


def test_chat_session_keeps_history_within_block_size_and_survives_ctrl_c(chat_folder):
    folder, _ = chat_folder
    model, tok, template = load_chat_model(folder)
    session = ChatSession(model, tok, template, system="Be brief.", max_new_tokens=12)
    for i in range(8):
        session.reply(f"hello there number {i}, how are you?")
    assert session.dropped > 0 and session.history and len(session.prompt_ids()) + 12 <= 96

    def interrupted(*args, **kwargs):
        yield torch.tensor([tok.encode("hello")[0]])
        raise KeyboardInterrupt

    model.stream = interrupted
    shown = []
    session.reply("more?", on_text=shown.append)
    del model.stream
    assert shown[-1] == " [stopped]" and session.history[-1]["role"] == "assistant"
    lines = iter(["hi", "/reset", "again", "/quit"])
    out = []
    assert chat_loop(session, read=lambda _: next(lines), write=out.append) == 2
    assert "[history cleared]\n" in out


def test_chat_command_refuses_what_is_not_a_chat_model(chat_folder, tmp_path, capsys):
    folder, _ = chat_folder
    assert main([str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in ("config.json", "model.safetensors"):
        (bare / f).write_bytes((folder / f).read_bytes())
    assert main([str(bare)]) == 2
    assert "no tokenizer.json" in capsys.readouterr().err
    run = subprocess.run([sys.executable, "-m", "mingpt.chat", str(folder), "--greedy", "--max-new-tokens", "5"],
                         input="hello\n", capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.count("bot> ") == 1, run.stderr


# --- A chat answers at once: decode weights kept with the model (chapter 18, over chapter 12's seam) ---

def test_a_second_generate_call_gathers_nothing(monkeypatch):
    import mingpt.instruct as instruct

    model, calls = tiny("gpt2"), []
    real = instruct.gather_decode_weights
    monkeypatch.setattr(instruct, "gather_decode_weights", lambda m: calls.append(m) or real(m))
    prompt = torch.tensor([[5, 6, 7]])
    first = model.generate(prompt, 8)
    assert torch.equal(model.generate(prompt, 8), first) and len(calls) == 1
    model.generate(torch.tensor([[1, 2], [3, 4]]), 4)  # another batch size: the same weights serve it
    assert len(calls) == 1


CHANGES = ["optimizer step", "load_state_dict", "in-place under no_grad", "nn.init", "double then float",
           "LoRA adapter loaded", "LoRA merged"]


def _change(name: str, model, tmp):
    """`model` with its weights changed the way `name` says; the model itself, or (LoRA) a model built on it."""
    from mingpt.lora import apply_lora, load_adapter, merge_lora, save_adapter

    if name == "optimizer step":
        model(torch.tensor([[1, 2, 3]]), torch.tensor([[2, 3, 4]]))[1].backward()
        torch.optim.SGD(model.parameters(), lr=1.0).step()
    elif name == "load_state_dict":
        model.load_state_dict(tiny("gpt2", seed=5).state_dict())
    elif name == "in-place under no_grad":
        with torch.no_grad():
            model.lm_head.weight.mul_(-1)
    elif name == "nn.init":
        torch.nn.init.normal_(model.transformer.h[1].mlp.c_fc.weight)
    elif name == "double then float":  # new storage twice; the first address may well come back
        model.double().float()
    elif name.startswith("LoRA"):  # load_adapter writes the saved matrices into a LoRA copy of its base
        trained = copy.deepcopy(model)
        apply_lora(trained, targets=("c_attn",), rank=2, alpha=4)
        with torch.no_grad():
            for p in trained.parameters():
                if p.requires_grad:
                    p.normal_()
        save_adapter(trained, tmp / "adapter")
        model = load_adapter(model, tmp / "adapter")
        if name == "LoRA merged":
            model = merge_lora(model)
    return model


@pytest.mark.parametrize("change", CHANGES)
def test_kept_weights_are_gathered_again_after_every_change(change, tmp_path):
    from mingpt.instruct import forget_decode_weights, kept_decode_weights

    model = tiny("gpt2")
    prompt = torch.tensor([[5, 6, 7, 8]])
    model.generate(prompt, 6)  # gathers and keeps
    before = kept_decode_weights(model)
    changed = _change(change, model, tmp_path)
    kept_answer = changed.generate(prompt, 12)
    assert torch.equal(kept_answer, changed.generate(prompt, 12, use_cache=False)), change  # no cache: no kept weights
    forget_decode_weights(changed)
    assert torch.equal(kept_answer, changed.generate(prompt, 12))  # the same as weights gathered afresh
    assert kept_decode_weights(changed) is not before


def test_a_write_through_data_is_not_seen_until_forgotten():
    from mingpt.instruct import forget_decode_weights

    model = tiny("gpt2")
    prompt = torch.tensor([[5, 6, 7, 8]])
    model.generate(prompt, 6)
    model.lm_head.weight.data.mul_(-1)  # bypasses the version counter on purpose
    stale = model.generate(prompt, 12)
    forget_decode_weights(model)
    assert not torch.equal(stale, model.generate(prompt, 12))  # the key's documented limit
    assert torch.equal(model.generate(prompt, 12), model.generate(prompt, 12, use_cache=False))


def test_kept_weights_go_with_the_model():
    import gc

    from mingpt.instruct import _kept

    model = tiny("gpt2")
    model.generate(torch.tensor([[1, 2]]), 3)
    assert model in _kept
    n = len(_kept)
    del model
    gc.collect()
    assert len(_kept) == n - 1


def test_chat_widget_streams_into_its_transcript_and_resets(chat_folder):
    pytest.importorskip("ipywidgets")
    from mingpt.chat import chat_widget, transcript_html

    folder, _ = chat_folder
    model, tok, template = load_chat_model(folder)
    session = ChatSession(model, tok, template, max_new_tokens=8)
    explorer = chat_widget(session)
    explorer.update("hello <there>")
    assert [m["role"] for m in session.history] == ["user", "assistant"]
    transcript = explorer.widget.children[0].value
    assert "hello &lt;there&gt;" in transcript and transcript == transcript_html(session)  # escaped, up to date
    explorer.controls["message"].value = "how are you?"  # what pressing Enter in the box does
    assert len(session.history) == 4 and explorer.controls["message"].value == ""
    explorer.controls["reset"].click()
    assert session.history == [] and "no messages yet" in explorer.widget.children[0].value
