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
