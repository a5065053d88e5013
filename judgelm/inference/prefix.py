"""Prefix-grouped prefill planning: which rows share a prompt prefix whose keys and values are computed once.

In model evaluation every model's answer to a question is judged against the same baseline answer, so in the
original order the prompt up to the second answer (system line, question, baseline answer) is the same for all
models; in both orders the question is shared. The engine computes such a prefix once per batch and copies its
keys and values to every row that shares it, then prefills only the rows' different suffixes: what vLLM's prefix
cache saves, without its block manager. A position's keys and values depend only on the tokens before it, so the
result is the same as prefilling each row whole.

One level of sharing: each row belongs to at most one prefix group, chosen so that the most prompt positions are
saved.
"""

from __future__ import annotations

MIN_PREFIX = 32
"""Shorter shared prefixes are not worth their own forward call (the system line alone is ~20 tokens)."""


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def prefix_groups(ids: list[list[int]], min_prefix: int = MIN_PREFIX) -> list[tuple[int, list[int]]]:
    """``(prefix length, prompt indices)`` groups covering every prompt; a prompt sharing nothing useful is alone
    with prefix 0.

    Sorted lexicographically, prompts that share a prefix are neighbours and a run of neighbours shares the
    smallest common prefix of its adjacent pairs. The runs are cut where that saves the most positions (each
    group of n rows with prefix p saves (n - 1) p), by dynamic programming over the sorted order. A prefix stops
    one token short of its shortest prompt, whose last token must go through the suffix pass for its logits.
    """
    order = sorted(range(len(ids)), key=lambda i: ids[i])
    n = len(order)
    lcp = [min(common_prefix(ids[order[k]], ids[order[k + 1]]), len(ids[order[k]]) - 1, len(ids[order[k + 1]]) - 1)
           for k in range(n - 1)]
    best, start = [0] * (n + 1), list(range(-1, n))  # best saving for order[:j], and where its last group starts
    for j in range(1, n + 1):
        best[j], start[j] = best[j - 1], j - 1
        shared = None
        for i in range(j - 2, -1, -1):  # the group order[i:j]
            shared = lcp[i] if shared is None else min(shared, lcp[i])
            if shared < min_prefix:
                break
            if best[i] + (j - i - 1) * shared > best[j]:
                best[j], start[j] = best[i] + (j - i - 1) * shared, i
    groups = []
    j = n
    while j > 0:
        i = start[j]
        rows = order[i:j]
        groups.append((min(lcp[i: j - 1]) if len(rows) > 1 else 0, rows))
        j = i
    return groups[::-1]


def attention_positions_per_token(hidden: int, intermediate: int) -> float:
    """A token's projections and MLP cost, in positions of attention context (~4 hidden flops each)."""
    return (4 * hidden * hidden + 3 * hidden * intermediate) / (4 * hidden)


def worth_sharing(prefix: int, suffix: int, per_token: float) -> bool:
    """Whether a row prefilled after a shared ``prefix`` costs less than the row prefilled whole.

    After a cached prefix the suffix attends through an explicit mask, counted here as the whole
    suffix × (prefix + suffix) rectangle, where a whole row computes only the causal half of its square; what
    sharing saves is the prefix's projections and MLP (``per_token`` each). On a small model with long answers
    (the tiny judge) a short shared question is not worth it; on a 7B judge nearly every shared prefix is. SDPA's
    CPU kernel costs less than that rectangle under the mask, yet sharing every prefix made the tiny judge's model
    evaluation 12-16 % slower (docs/speed.md, 21:01): the rule stands for the costs it does not model, the extra
    forward calls and the prefix's own pass.
    """
    shared = suffix * (prefix + suffix) + per_token * suffix
    return shared < whole_row(prefix + suffix, per_token)


def whole_row(n: int, per_token: float) -> float:
    """A row of ``n`` positions prefilled whole: causal attention and each token's projections and MLP."""
    return n * n / 2 + per_token * n


def prefill_cost(lengths: list[int], prefix: int, per_token: float) -> float:
    """What prefilling rows of ``lengths`` after a ``prefix`` computed once (0: none) costs, in the units of
    ``worth_sharing``: each row what it would cost whole, less the prefix, which is computed once. (The suffix's
    attention to the prefix is counted as the useful half of the rectangle ``worth_sharing`` charges: SDPA's CPU
    kernel costs about that, docs/speed.md 21:39.)"""
    once = whole_row(prefix, per_token)
    return once + sum(whole_row(n, per_token) - once for n in lengths)
