"""The explorers of chapters 7 and 9 (mingpt.explore): widgets that build without a display and react
to their controls, static figures that render, and a live loss plot that is harmless outside a notebook."""
import subprocess
import sys

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from conftest import tiny_gpt  # noqa: E402
from mingpt import explore  # noqa: E402
from mingpt import Trainer, TrainerConfig  # noqa: E402

CHARS = "abcdefg \n$&"


def decode(ids):
    return "".join(CHARS[int(i)] for i in ids)


PROMPT = torch.tensor([[1, 2, 3, 7, 4, 8]])  # (1, T)


def test_the_package_does_not_need_matplotlib_or_ipywidgets():
    code = "import sys, mingpt.explore; assert 'matplotlib' not in sys.modules and 'ipywidgets' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sampling_explorer_reacts_to_its_controls(model):
    ex = explore.sampling_explorer(model, PROMPT, decode, n_new=12)
    png, sample = bytes(ex.widget.children[2].value), ex.state["sample"]
    assert png.startswith(b"\x89PNG") and len(sample) == 12 and ex.state["kept"] == len(CHARS)
    ex.controls["top_k"].value = 3
    assert ex.state["kept"] == 3 and bytes(ex.widget.children[2].value) != png
    ex.controls["top_k"].value = 0
    ex.controls["top_p"].value = 0.05
    assert ex.state["kept"] == 1
    ex.controls["top_p"].value = 1.0
    ex.controls["temperature"].value = 0.1
    assert ex.state["kept"] == len(CHARS)
    torch.testing.assert_close(ex.state["distribution"].sum(), torch.tensor(1.0))
    ex.controls["seed"].value = 0
    first = ex.state["sample"]
    ex.controls["seed"].value = 1
    ex.controls["seed"].value = 0
    assert ex.state["sample"] == first, "the same seed gives the same continuation"
    assert "temperature=" in repr(ex)


def test_sampling_explorer_refuses_a_batch(model):
    with pytest.raises(ValueError, match=r"shape \(1, T\)"):
        explore.sampling_explorer(model, PROMPT.repeat(2, 1), decode)


def test_attention_maps_are_causal_rows_that_sum_to_one(model):
    maps = explore.attention_maps(model, PROMPT)
    L, nh, T = model.config.n_layer, model.config.n_head, PROMPT.size(1)
    assert maps.shape == (L, nh, T, T)
    torch.testing.assert_close(maps.sum(-1), torch.ones(L, nh, T))
    assert (maps.triu(diagonal=1) == 0).all()
    attn = [m for m in model.modules() if isinstance(m, explore.CausalSelfAttention)]
    assert all(not m.keep_attention and m.attention is None for m in attn), "switches restored"
    with pytest.raises(ValueError, match="at most"):
        explore.attention_maps(model, torch.zeros(1, model.get_block_size() + 1, dtype=torch.long))


def test_attention_explorer_reacts_to_its_controls(model):
    ex = explore.attention_explorer(model, PROMPT, decode)
    maps = explore.attention_maps(model, PROMPT)
    torch.testing.assert_close(ex.state["row"], maps[0, 0, -1])
    ex.controls["layer"].value, ex.controls["head"].value, ex.controls["token"].value = 1, 1, 2
    torch.testing.assert_close(ex.state["row"], maps[1, 1, 2, :3])
    assert bytes(ex.widget.children[2].value).startswith(b"\x89PNG") and "<span" in ex.widget.children[1].value


def test_static_figures_render(model):
    fig = explore.plot_sampling_settings(model, PROMPT, decode, [dict(temperature=0.5), dict(top_k=2, top_p=0.9)],
                                         n_new=10)
    assert len(fig.axes) == 4 and explore.figure_png(fig).startswith(b"\x89PNG")
    maps = explore.attention_maps(model, PROMPT)
    fig = explore.plot_attention_heads(maps, [decode([i]) for i in PROMPT[0]], query=3)
    assert len(fig.axes) == model.config.n_layer * model.config.n_head
    assert explore.figure_png(fig).startswith(b"\x89PNG")
    matplotlib.pyplot.close("all")


def test_live_loss_plot_is_harmless_outside_a_notebook():
    from mingpt.data import CharDataset

    ds = CharDataset("to be or not to be, that is the question " * 4, block_size=8)
    model = tiny_gpt(vocab_size=ds.vocab_size)
    trainer = Trainer(model, ds, ds, TrainerConfig(max_iters=25, batch_size=4, eval_interval=10, eval_iters=1,
                                                   progress=False))
    live = explore.LiveLossPlot("test", every=0.0, baseline=2.0).attach(trainer)
    assert not live.notebook
    trainer.train()
    assert live.draws == 1 and live.figure is not None, "outside a notebook: only the final plot"
    assert "25" in live.figure.axes[0].get_title() and "done" in live.figure.axes[0].get_title()
    live.update(trainer)  # drawing by hand works too
    assert live.draws == 2 and live.draw_seconds > 0
    with pytest.raises(ValueError, match="every"):
        explore.LiveLossPlot(every=-1)


def test_live_loss_plot_updates_one_display_in_a_notebook(monkeypatch):
    shown = []

    class Handle:
        def update(self, obj):
            shown.append(("update", obj))

    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda obj, display_id=False: shown.append(("display", obj))
                        or Handle())
    history = {"iter": list(range(1, 41)), "train_loss": [3 - i / 20 for i in range(40)], "lr": [],
               "eval_iter": [20, 40], "test_loss": [2.5, 2.0]}
    trainer = type("T", (), {"history": history})()
    live = explore.LiveLossPlot("t", every=3600, notebook=True)
    live.on_batch_end(trainer)  # the first call draws
    live.on_batch_end(trainer)  # throttled: within the hour, nothing
    live.on_train_end(trainer)  # the final plot, always
    assert [kind for kind, _ in shown] == ["display", "update"], "one display, updated in place"
    assert live.draws == 2


def test_an_explorer_displays_as_its_widget(model, monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    ex = explore.sampling_explorer(model, PROMPT, decode, n_new=4)
    ex._ipython_display_()
    assert shown == [ex.widget]
