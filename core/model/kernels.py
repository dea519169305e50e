"""The linear layers of GPT-2's blocks, with oneDNN's fused CPU kernels in the model's eval passes when they apply.

Scoring and the occlusion reasons spend most of their time in the blocks' small linear
layers (hidden 64). oneDNN (``torch.ops.mkldnn._linear_pointwise``) runs each of them in one
call with the tanh GELU or the residual add folded into the product, where plain torch runs
the product, then a separate pass over memory for the activation and another for the sum.
The numbers are the same up to float rounding. The fused path is taken only for float32 CPU
tensors without autograd (training keeps torch's own layers); anything else, or a torch
built without oneDNN, runs the plain layers.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F


def _fused(x: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_grad_enabled()
            and torch.backends.mkldnn.is_available())


def _weight(conv, lo: int, hi: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """A GPT-2 ``Conv1D``'s columns ``lo:hi`` as a [out, in] contiguous weight and its bias (what oneDNN reads;
    a strided slice sends it down a path hundreds of times slower)."""
    return conv.weight[:, lo:hi].t().contiguous(), conv.bias[lo:hi].contiguous()


def conv1d(conv, x: torch.Tensor, lo: int = 0, hi: int | None = None) -> torch.Tensor:
    """``x @ conv.weight[:, lo:hi] + conv.bias[lo:hi]`` for a GPT-2 ``Conv1D`` (output columns ``lo:hi``)."""
    if not _fused(x):
        w, b = conv.weight[:, lo:hi], conv.bias[lo:hi]
        return torch.addmm(b, x.reshape(-1, x.shape[-1]), w).reshape(*x.shape[:-1], w.shape[1])
    w, b = _weight(conv, lo, hi)
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), w, b, "none", [], "")


def _plus_linear(conv, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """``residual + conv(h)``, the sum folded into the product."""
    w, b = _weight(conv, 0, None)
    return torch.ops.mkldnn._linear_pointwise.binary(h.contiguous(), residual.contiguous(), w, b, "add")


def _tanh_gelu(block) -> bool:
    act = block.mlp.act
    inner = getattr(act, "act", None)
    return getattr(inner, "keywords", {}).get("approximate") == "tanh" and getattr(inner, "func", None) is F.gelu


def attention_out_and_mlp(block, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
    """The rest of a GPT-2 block after attention: ``x + c_proj(attended)``, then the MLP with its residual (in
    training mode, with GPT-2's dropout on both residual branches). ``attended``: the heads' outputs merged
    back, [..., hidden]."""
    if not _fused(x):
        x = x + block.attn.resid_dropout(block.attn.c_proj(attended))
        return x + block.mlp(block.ln_2(x))
    x = _plus_linear(block.attn.c_proj, attended, x)
    z = block.ln_2(x)
    if _tanh_gelu(block):
        w, b = _weight(block.mlp.c_fc, 0, None)
        inner = torch.ops.mkldnn._linear_pointwise(z.contiguous(), w, b, "gelu", [], "tanh")
    else:
        inner = block.mlp.act(conv1d(block.mlp.c_fc, z))
    return _plus_linear(block.mlp.c_proj, inner, x)
