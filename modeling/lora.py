"""LoRA on a family's LLM (or its parts), the way every tokcom model attaches it (TokCom eq. 11, TaiChi Sec. V-B).

>>> import torch
>>> from transformers import Qwen2Config, Qwen2Model
>>> llm = Qwen2Model(Qwen2Config(vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
...                              num_attention_heads=2, num_key_value_heads=1))
>>> attach_lora(llm, r=2, alpha=4, dropout=0.0, target_modules=["q_proj"])
>>> zero_lora_b(llm)
>>> llm.layers[0].self_attn.q_proj.lora_B["default"].weight.abs().max().item()
0.0
"""

from __future__ import annotations

from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from torch import nn
from transformers import initialization as init


def attach_lora(module: nn.Module, r: int, alpha: int, dropout: float, target_modules) -> None:
    """Inject a LoRA adapter (peft, adapter name "default") into `module`'s `target_modules` in place."""
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules))
    inject_adapter_in_model(config, module)


def zero_lora_b(module: nn.Module) -> None:
    """Start every adapter in `module` as the identity (lora_B = 0).

    peft does so on injection, but a model's `post_init` (its Linear init) redraws lora_B at random; `init.zeros_`
    leaves weights loaded from a checkpoint untouched."""
    for layer in module.modules():
        if isinstance(layer, LoraLayer):
            for adapter in layer.lora_B.values():
                init.zeros_(adapter.weight)


__all__ = ["attach_lora", "zero_lora_b"]
