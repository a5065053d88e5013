"""Weights packed once for oneDNN (or MKL) while a decode batch keeps its size (judgelm.inference.packed_linear)."""

import pytest
import torch
from torch import nn

from judgelm.inference import hf, packed_linear
from judgelm.inference.config import EngineConfig, ModelConfig
from judgelm.inference.hf import HFEngine
from judgelm.inference.models import load_judge
from judgelm.inference.packed_linear import REPEATS, PackedLinear, install
from tests.test_engine import prompts, reference_generate

pytestmark = pytest.mark.skipif(not packed_linear.available(), reason="torch built without oneDNN and MKL")


def test_a_layer_packs_once_its_row_count_repeats_and_multiplies_as_before():
    torch.manual_seed(0)
    layer = nn.Linear(96, 160)
    assert install(nn.Sequential(layer)) == 1 and type(layer) is PackedLinear
    x = torch.randn(8, 96)
    with torch.inference_mode():
        for call in range(1, REPEATS + 2):
            out = layer(x)
            assert (layer.packed is not None) == (call >= REPEATS)
            torch.testing.assert_close(out, torch.nn.functional.linear(x, layer.weight, layer.bias))
        layer(torch.randn(6, 96))  # the batch shrank: the copy for 8 rows is dropped
        assert layer.packed is None
        for _ in range(2 * REPEATS):
            layer(torch.randn(1, 96))  # one row: a matrix-vector product, never packed
        assert layer.packed is None
    for _ in range(2 * REPEATS):  # training or autograd: the plain product
        layer(x)
    assert layer.packed is None
    assert set(layer.state_dict()) == {"weight", "bias"}


@pytest.mark.parametrize("onednn", [True, False])
def test_either_backend_multiplies_as_f_linear(monkeypatch, onednn):
    """oneDNN's pair where torch has it, MKL's otherwise: both give F.linear's product (up to rounding)."""
    if onednn and not packed_linear.ONEDNN or not onednn and not torch.backends.mkl.is_available():
        pytest.skip("torch built without this backend")
    monkeypatch.setattr(packed_linear, "ONEDNN", onednn)
    torch.manual_seed(2)
    layer = nn.Linear(80, 48)
    install(layer)
    x = torch.randn(5, 80)
    with torch.inference_mode():
        outs = [layer(x) for _ in range(REPEATS + 1)]
    assert layer.packed is not None
    torch.testing.assert_close(outs[-1], torch.nn.functional.linear(x, layer.weight, layer.bias))


def test_a_weight_changed_by_training_is_packed_again():
    """A model judged while it trains (validation): the copy packed before an optimizer step must not outlive it."""
    torch.manual_seed(1)
    layer = nn.Linear(64, 64)
    install(layer)
    x = torch.randn(8, 64)
    with torch.inference_mode():
        for _ in range(REPEATS):
            layer(x)
    stale = layer.packed
    assert stale is not None
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer(torch.randn(8, 64)).square().sum().backward()  # the same row count, outside inference mode
    optimizer.step()
    with torch.inference_mode():
        for _ in range(REPEATS + 1):
            out = layer(x)
    assert layer.packed is not None and layer.packed is not stale
    torch.testing.assert_close(out, torch.nn.functional.linear(x, layer.weight, layer.bias))


@pytest.mark.parametrize("mode", ["fast", "full"])
def test_an_engine_on_a_model_from_small_model_up_packs_and_judges_the_same_tokens(random_judge, monkeypatch, mode):
    model, tok, device = load_judge(ModelConfig(path=str(random_judge)))[:3]  # its own copy: install changes it
    monkeypatch.setattr(hf, "SMALL_MODEL", 1)  # the random judge is far smaller than a model that gains from it
    packed = []
    monkeypatch.setattr(packed_linear, "pack", lambda w, rows, pack=packed_linear.pack: packed.append(rows)
                        or pack(w, rows))
    eng = HFEngine(model, tok, device, EngineConfig(mode=mode, max_new_tokens=12, max_batch=4))
    assert all(type(m) is PackedLinear for m in model.modules() if isinstance(m, nn.Linear))
    ids = prompts(tok)
    gens = eng.generate(list(range(len(ids))), ids)
    assert packed or mode == "fast"  # full mode's batches decode long enough to pack
    for g, p in zip(gens, ids):
        assert g.token_ids == reference_generate(model, p, eng.stop_ids.tolist(), 12)
