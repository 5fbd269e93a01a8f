"""Preservation: tonight's expert must leave each adapted layer's output on general text where it was.

MEMIT's edits keep a layer's outputs on preserved keys (`||dW K0||^2`, K0 the layer's inputs on general
text) while they write the new facts; AlphaEdit projects the edit onto those keys' null space. The same
idea for a LoRA expert, as a penalty: for every adapted module, the inputs it sees on the general prompts
and the base's replies to them (the general replay's tokens) are summarised once before training by
their top singular directions, `L` (in x k, `L @ L.T` ~ the inputs' second moment), and each step adds

    mean over modules of  ||s * B @ A @ L||^2 / ||W @ L||^2

the output energy the expert adds on general inputs relative to the frozen layer's own. Unlike the KL on
a general prompt drawn into a batch (one of eight rows), it weighs every general token at every step and
costs a few small matrix products; it is first order (per layer), the KL sees the whole model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from trainer.experts import EXPERT, lora_modules


@dataclass
class KeyBasis:
    """One module's general inputs: `basis` (in x k) with `basis @ basis.T` ~ E[x x^T] over general tokens
    (top k directions), and `norm`, the frozen layer's output energy on them (`||W @ basis||^2`)."""

    basis: torch.Tensor
    norm: float


def summarise(inputs: torch.Tensor, rank: int) -> torch.Tensor:
    """(N, in) inputs -> (in, k) basis, k = min(rank, N, in): the top right singular vectors scaled by
    their singular values over sqrt(N), so `basis @ basis.T` is the best rank-k approximation of the
    inputs' second moment `inputs.T @ inputs / N`."""
    inputs = inputs.float()
    _, s, vh = torch.linalg.svd(inputs, full_matrices=False)
    k = min(rank, s.numel())
    return vh[:k].T * (s[:k] / inputs.shape[0] ** 0.5)


@torch.no_grad()
def general_keys(model: torch.nn.Module, sequences: Sequence[Sequence[int]], rank: int,
                 adapter: str = EXPERT) -> dict[str, KeyBasis]:
    """The inputs of every module that holds `adapter`, over `sequences` (token ids: a general prompt
    and its reply each), with the model's active adapters as they are (tonight's expert is still zero).
    Modules fed the same tensor (q, k and v) share one decomposition."""
    modules = {name: m for name, m in lora_modules(model) if adapter in m.lora_A}
    seen: dict[str, list[torch.Tensor]] = {name: [] for name in modules}
    hooks = [m.register_forward_pre_hook(lambda _m, args, name=name: seen[name].append(args[0]))
             for name, m in modules.items()]
    device = next(model.parameters()).device
    try:
        for ids in sequences:  # one at a time: no padding among the inputs
            model(input_ids=torch.tensor([list(ids)], device=device))
    finally:
        for h in hooks:
            h.remove()
    keys: dict[str, KeyBasis] = {}
    shared: dict[int, torch.Tensor] = {}  # id of a module's first input tensor -> its basis
    for name, m in modules.items():
        if not seen[name]:
            continue
        first = id(seen[name][0])
        if first not in shared:
            shared[first] = summarise(torch.cat([x.reshape(-1, x.shape[-1]) for x in seen[name]]), rank)
        basis = shared[first]
        weight = m.get_base_layer().weight.detach().float()
        keys[name] = KeyBasis(basis, float((weight @ basis).pow(2).sum()))
    return keys


def preservation_penalty(model: torch.nn.Module, keys: dict[str, KeyBasis], adapter: str = EXPERT) -> torch.Tensor:
    """Mean over `keys`' modules of the output energy `adapter` adds on general inputs, relative to the
    frozen layer's: `||s * B @ A @ basis||^2 / norm`. Zero while B is zero (a grown expert)."""
    terms = []
    for name, m in lora_modules(model):
        if name not in keys or adapter not in m.lora_A:
            continue
        key = keys[name]
        a = m.lora_A[adapter].weight
        b = m.lora_B[adapter].weight
        basis = key.basis.to(device=a.device, dtype=a.dtype)
        added = m.scaling[adapter] * (b @ (a @ basis))
        terms.append(added.float().pow(2).sum() / max(key.norm, 1e-12))
    if not terms:
        return torch.zeros(())
    return torch.stack(terms).mean()
