"""Released JudgeLM / Vicuna checkpoints ship only a sentencepiece ``tokenizer.model``: it loads (converted by
transformers with ``sentencepiece`` and ``protobuf``), pads with unk as JudgeLM does, and starts prompts with BOS."""

import pytest

from judgelm.inference.hf import newline_token_ids
from judgelm.inference.models import encode_with_bos, load_tokenizer
from tests.sp_judge import build_sentencepiece_judge


@pytest.fixture(scope="module")
def sp_dir(tmp_path_factory):
    return build_sentencepiece_judge(tmp_path_factory.mktemp("sp") / "judgelm-like")


def test_a_directory_with_only_tokenizer_model_loads_like_llama(sp_dir):
    assert not (sp_dir / "tokenizer.json").exists()
    tok = load_tokenizer(str(sp_dir))
    assert (tok.bos_token_id, tok.eos_token_id, tok.unk_token_id) == (1, 2, 0)
    assert tok.pad_token_id == tok.unk_token_id  # LLaMA-1 tokenizers have no pad token; JudgeLM pads with unk
    assert tok.padding_side == "left"
    text = "Assistant 1: 7 3\nwhy é 中"
    ids = encode_with_bos(tok, [text])[0]
    assert ids[0] == 1 and ids.count(1) == 1
    assert tok.decode(ids, skip_special_tokens=True) == text


def test_byte_fallback_newline_is_a_stop_token_even_after_an_incomplete_utf8_sequence(sp_dir):
    tok = load_tokenizer(str(sp_dir))
    nl, e4, b8 = tok.convert_tokens_to_ids(["<0x0A>", "<0xE4>", "<0xB8>"])
    # Decoded together, the newline byte after two bytes of a 3-byte character is lost in replacement characters,
    # so a stop rule on decoded text (JudgeLM's own) misses it; the engine stops on the token itself.
    assert "\n" not in tok.decode([e4, b8, nl])
    assert nl in newline_token_ids(tok)
