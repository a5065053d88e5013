"""Model FLOPs utilisation: the FLOPs a step needs by the model's arithmetic, over what the hardware could do.

Counted per step from the real (unpadded) sequence lengths, as in the PaLM appendix and nanoGPT: 6 FLOPs per
parameter per token for the decoder's matrices, 6·L·d·T² per sequence for causal attention (half of the full
T² score matrix), and the LM head only at the positions whose logits the loss needs. Recomputation from
gradient checkpointing is not counted (that would be hardware FLOPs utilisation).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

# Dense bf16 tensor-core peaks (no sparsity), per device, from the vendors' data sheets.
_GPU_PEAK_TFLOPS = (("H200", 989.0), ("H100", 989.0), ("A100", 312.0), ("L40S", 362.0), ("A10", 125.0),
                    ("V100", 125.0))


def peak_flops(device: torch.device, configured_tflops: float = 0.0) -> float:
    """Peak FLOP/s of one device: the configured value, a data-sheet value for known GPUs, or for a CPU the
    nominal FMA rate of the cores this process may use (vector width × 2 FLOPs × 2 FMA units × clock)."""
    if configured_tflops > 0:
        return configured_tflops * 1e12
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, tflops in _GPU_PEAK_TFLOPS:
            if key in name:
                return tflops * 1e12
        return 0.0
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    mhz = re.search(r"cpu MHz\s*:\s*([\d.]+)", info)
    fp32_lanes = 16 if " avx512f" in info else 8 if " avx2" in info else 4
    return torch.get_num_threads() * (float(mhz.group(1)) * 1e6 if mhz else 2e9) * fp32_lanes * 2 * 2


class FlopCounter:
    """Training FLOPs (forward + backward) of a decoder-only transformer, from its config."""

    def __init__(self, model_config, n_params: int):
        self.layers = model_config.num_hidden_layers
        self.hidden = model_config.hidden_size
        self.vocab = model_config.vocab_size
        embeddings = self.vocab * self.hidden * (1 if model_config.tie_word_embeddings else 2)
        self.body_params = n_params - embeddings  # the lookup table costs no FLOPs; the head is counted apart

    def step_flops(self, seq_lens: list[int], logit_rows: int) -> float:
        tokens = sum(seq_lens)
        attention = 6 * self.layers * self.hidden * sum(t * t for t in seq_lens)
        return 6 * self.body_params * tokens + attention + 6 * self.vocab * self.hidden * logit_rows
