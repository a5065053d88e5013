"""The tiny judge's tokenizer: a byte-level BPE trained here, shaped like Llama's tokenizer.

Real JudgeLM models bring their own (Llama) tokenizer. The tiny judge cannot download one, so it gets a
small BPE trained on its training corpus and on the JudgeLM prompt strings (which then cost few tokens).
It behaves like Llama's where the pipeline relies on it: ``<unk>``/``<s>``/``</s>`` are ids 0/1/2,
``tokenizer(text)`` prepends BOS, and it loads offline with ``AutoTokenizer.from_pretrained(dir)``.

Byte-level pre-tokenisation splits digits and newlines into their own pieces, so a score line ``"8 3\\n"``
is emitted as tokens that decode back exactly and a judge can stop on the newline.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from judgelm.profiles.prompts import build_prompt
from judgelm.train.data import TrainRecord

UNK, BOS, EOS, PAD = "<unk>", "<s>", "</s>", "<pad>"


def corpus(records: Iterable[TrainRecord]) -> Iterator[str]:
    """Every text the judge reads or writes in training: both prompt variants and both judgements."""
    for r in records:
        yield build_prompt(r.question, r.answers)
        yield r.text
        if r.reference is not None:
            yield build_prompt(r.question, r.answers, reference=r.reference)
            yield r.text_w_reference


def train_tokenizer(texts: Iterable[str], vocab_size: int, model_max_length: int) -> PreTrainedTokenizerFast:
    """Train the BPE on ``texts`` (deterministic for a given input order) and wrap it for transformers."""
    tok = Tokenizer(models.BPE(unk_token=UNK))
    # No prefix space: like Llama, a prompt ending in ":" is followed directly by the score digits.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[UNK, BOS, EOS, PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)])
    # padding_side must go to the constructor: set as an attribute it is not saved (transformers v5).
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, unk_token=UNK,
                                   pad_token=PAD, padding_side="left", model_max_length=model_max_length)


def build_tiny_tokenizer(records: Iterable[TrainRecord], vocab_size: int, model_max_length: int,
                         out_dir: str | Path) -> PreTrainedTokenizerFast:
    tokenizer = train_tokenizer(corpus(records), vocab_size, model_max_length)
    tokenizer.save_pretrained(out_dir)
    return tokenizer
