"""The fused linear layers of the eval passes equal GPT-2's own layers."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture
def block():
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(0)
    return GPT2Model(GPT2Config(vocab_size=1, n_positions=8, n_embd=16, n_layer=1, n_head=2, n_inner=64,
                                activation_function="gelu_pytorch_tanh")).eval().h[0]


def test_the_fused_block_rest_equals_gpt2s_layers(block):
    from core.model import kernels

    x, attended = torch.randn(5, 7, 16), torch.randn(5, 7, 16)
    with torch.no_grad():
        expected = x + block.attn.c_proj(attended)
        expected = expected + block.mlp(block.ln_2(expected))
        assert kernels._fused(x) == torch.backends.mkldnn.is_available()  # the fused path is the one measured
        assert kernels._tanh_gelu(block)  # with the GELU folded into its product
        got = kernels.attention_out_and_mlp(block, x, attended)
    assert torch.allclose(got, expected, atol=1e-5)
    with torch.enable_grad():  # training keeps torch's own layers
        assert not kernels._fused(x)
        assert torch.allclose(kernels.attention_out_and_mlp(block, x, attended), expected, atol=1e-6)


@pytest.mark.parametrize("lo, hi", [(0, None), (0, 16), (16, None), (16, 32)])
def test_projection_columns_equal_the_conv1d_slice(block, lo, hi):
    from core.model import kernels

    z = torch.randn(4, 6, 16)
    with torch.no_grad():
        full = block.attn.c_attn(z)
        assert torch.allclose(kernels.conv1d(block.attn.c_attn, z, lo, hi), full[..., lo:hi], atol=1e-5)


def _two_layer_model(dropout: float):
    from core.model.config import ModelConfig
    from core.model.modeling import ForecastModel, batch_tensors
    from tests.model.test_model import random_batch

    torch.manual_seed(0)
    cfg = ModelConfig(max_len=12, hidden_size=16, n_layers=2, n_heads=2, dropout=dropout).with_vocab_sizes(9, 6, 4)
    return ForecastModel(cfg).train(), batch_tensors(random_batch(20, 12, 9, 6, seed=1))


def test_the_training_pass_equals_gpt2s_own_with_its_gradients(monkeypatch):
    """In training mode the last hidden state comes from the model's own blocks (the last one at the last
    position only), not ``GPT2Model.forward``: the same values and the same gradients (dropout off to compare)."""
    model, inputs = _two_layer_model(dropout=0.0)
    expected = model.transformer(inputs_embeds=model._embed(inputs), attention_mask=inputs["attention_mask"],
                                 position_ids=inputs["position_ids"]).last_hidden_state[:, -1]
    params = list(model.transformer.parameters())
    want = torch.autograd.grad(expected.sum(), params, allow_unused=True)

    def library_pass(*args, **kwargs):
        raise AssertionError("the training pass ran GPT2Model.forward")

    monkeypatch.setattr(model.transformer, "forward", library_pass)
    got = model.last_hidden(inputs)
    assert torch.allclose(got, expected, atol=1e-6)
    for g, w in zip(torch.autograd.grad(got.sum(), params, allow_unused=True), want):
        assert (g is None and (w is None or not w.any())) or torch.allclose(g, w, atol=1e-6)


def test_the_training_pass_drops_out_where_gpt2_does(monkeypatch):
    """Dropout on the embeddings, on both residual branches of every block, and on the attention weights."""
    from torch.nn import functional as F

    from core.model import modeling

    model, inputs = _two_layer_model(dropout=0.1)
    dropped = []
    for module in model.transformer.modules():
        if isinstance(module, torch.nn.Dropout):
            module.register_forward_hook(lambda m, args, out: dropped.append(m.p))
    rates, real_sdpa = [], F.scaled_dot_product_attention

    def sdpa(*args, dropout_p=0.0, **kwargs):
        rates.append(dropout_p)
        return real_sdpa(*args, dropout_p=dropout_p, **kwargs)

    monkeypatch.setattr(modeling.F, "scaled_dot_product_attention", sdpa)
    first, second = model.last_hidden(inputs), model.last_hidden(inputs)
    assert dropped == [0.1] * 10 and rates == [0.1] * 4  # 1 + 2 per block, two blocks; twice
    assert not torch.allclose(first, second)
    model.eval()
    dropped.clear(), rates.clear()
    with torch.no_grad():
        assert torch.allclose(model.last_hidden(inputs), model.last_hidden(inputs))
    assert rates == [0.0] * 4
