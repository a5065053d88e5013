"""JudgeLM's own way of judging, kept as the baseline that ``make bench`` measures against.

One record per ``model.generate`` call (batch size 1, no padding) with a keyword stopping criterion that decodes
the newly generated tokens of the batch's first row at every step and stops when the keyword appears (``"\\n"``
in fast mode; ``"</s>"`` otherwise, which never matches decoded text, so generation ends on EOS or the length
limit). This mirrors reference document §3.4 and §5.2 in behaviour; it is not used for judging.
"""

from __future__ import annotations

import torch
from transformers import StoppingCriteria, StoppingCriteriaList


class KeywordStop(StoppingCriteria):
    """Stop when the decoded new text of row 0 contains ``keyword``; the first call records the prompt length."""

    def __init__(self, keyword: str, tokenizer):
        self.keyword, self.tokenizer, self.start = keyword, tokenizer, None

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> bool:
        if self.start is None:
            self.start = input_ids.shape[1] - 1
        text = self.tokenizer.decode(input_ids[0, self.start:], skip_special_tokens=True)
        return self.keyword in text


@torch.inference_mode()
def judge_one_at_a_time(model, tokenizer, prompts: list[list[int]], max_new_tokens: int, fast: bool) -> list[list[int]]:
    """Generated token ids per prompt, one ``generate`` call each, greedy."""
    out = []
    device = next(model.parameters()).device
    for ids in prompts:
        x = torch.tensor([ids], device=device)
        stop = StoppingCriteriaList([KeywordStop("\n" if fast else "</s>", tokenizer)])
        y = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=max_new_tokens, do_sample=False,
                           stopping_criteria=stop, pad_token_id=tokenizer.pad_token_id)
        out.append(y[0, len(ids):].tolist())
    return out
