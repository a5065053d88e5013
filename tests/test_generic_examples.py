"""The four public shapes in data/generic_examples/ go through the documented generic path (a mapping file, no
code), and importing each set's own labels as verdicts scores 100 % agreement through the real merge."""

import json

import pytest

from judgelm.config import REPO_ROOT
from judgelm.data.benchmarks import load_dataset
from judgelm.data.benchmarks.generic import load_generic_config
from judgelm.judging.external import GenericFields, import_verdicts, read_generic
from judgelm.results.merge import merge_run

EXAMPLES = REPO_ROOT / "data" / "generic_examples"

# mapping file, records, ids from line numbers, labels (1, 0, -1), how its own labels read as verdicts
CASES = {
    "autoj": ("autoj/autoj.yaml", 30, True, (11, 10, 9),
              GenericFields(id="", winner="label", winner_values={0: 1, 1: -1, 2: 0})),
    "faireval": ("faireval/faireval.yaml", 24, False, (8, 8, 8),
                 GenericFields(id="question_id", winner="human", winner_values={"CHATGPT": 1, "VICUNA13B": -1,
                                                                                 "TIE": 0})),
    "evalbiasbench": ("evalbiasbench/evalbiasbench.yaml", 24, True, (12, 0, 12),
                      GenericFields(id="", winner="label", winner_values={1: 1, 2: -1})),
    "hhh": ("hhh/hhh.yaml", 24, True, (24, 0, 0), None),  # labels are implicit: chosen is answer 1
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_public_shapes_load_through_the_generic_path(name):
    mapping, n, from_lines, counts, _ = CASES[name]
    loaded = load_dataset(f"generic:{EXAMPLES / mapping}")
    assert len(loaded.records) == n and not loaded.rejects and loaded.ids_from_lines == from_lines
    assert tuple(sum(r.label == v for r in loaded.records) for v in (1, 0, -1)) == counts
    assert all(r.subset.startswith(name) for r in loaded.records)
    assert all(r.question.strip() and "###" not in r.question + "".join(r.answers) for r in loaded.records)


def test_an_empty_answer_is_kept_and_counted():
    loaded = load_dataset(f"generic:{EXAMPLES / 'autoj/autoj.yaml'}")
    assert loaded.empty_answers == 1 and loaded.records[7].answers[1] == "" and loaded.records[7].label == 1


@pytest.mark.parametrize("name", sorted(CASES))
def test_reimporting_their_own_labels_gives_full_agreement(tmp_path, name):
    mapping, n, _, _, fields = CASES[name]
    loaded = load_dataset(str(EXAMPLES / mapping))  # a plain .yaml path works as well as generic:
    if fields is None:  # HHH has no label field: the verdicts say "chosen" for every item, by item number
        verdict_file = tmp_path / "verdicts.json"
        verdict_file.write_text(json.dumps([{"pick": "chosen"}] * n))
        fields = GenericFields(id="", winner="pick", winner_values={"chosen": 1})
    else:
        verdict_file = (EXAMPLES / mapping).parent / load_generic_config(EXAMPLES / mapping).path  # the data itself
    result = import_verdicts(tmp_path / name / "verdicts.zarr", loaded, read_generic(verdict_file, fields))
    assert (result.records, result.records_without_verdict) == (n, 0)
    g = merge_run(tmp_path / name)["groups"]["without_reference"]
    assert g["agreement"] == 1.0

