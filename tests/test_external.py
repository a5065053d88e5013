"""Importing another judge's verdicts (judgelm/judging/external.py, launch/import_verdicts.py)."""

import json

import pytest

from judgelm.config import ConfigError
from judgelm.data.benchmarks import DATA_DIR, load_dataset
from judgelm.data.records import RecordError
from judgelm.judging.external import GenericFields, import_verdicts, read_generic, read_judgelm, read_pandalm
from judgelm.results.merge import compute_metrics
from launch import import_verdicts as cli
from tests.conftest import write_pairs

# What PandaLM's own data/compute_metrics.py prints for its released files (the comments in that script), and
# what its paper reports (quoted by JudgeLM, reference §7.2): agreement, precision, recall, F1 in percent.
PANDALM_SCRIPT = {"gpt-3.5-turbo-testset-v1.json": (71.07, 58.79, 57.36, 57.55),
                  "pandalm-7b-testset-v1.json": (66.77, 57.38, 57.50, 57.43)}
PANDALM_PAPER = {"gpt-3.5-turbo-testset-v1.json": (62.96, 61.95, 63.59, 58.20),
                 "pandalm-7b-testset-v1.json": (59.26, 57.28, 59.23, 54.56)}


@pytest.mark.parametrize("name", sorted(PANDALM_SCRIPT))
def test_pandalm_outputs_reproduce_the_authors_script(tmp_path, name):
    result = import_verdicts(tmp_path / "s.zarr", load_dataset("pandalm"), read_pandalm(DATA_DIR / "pandalm" / name))
    assert result.records == 999 and result.records_without_verdict == 0
    g = compute_metrics(result.store)["groups"]["without_reference"]
    ours = tuple(round(100 * g[k], 2) for k in ("agreement", "precision", "recall", "f1"))
    assert ours == PANDALM_SCRIPT[name]
    # The paper's figures are a different set of predictions; the shipped note must show both, correctly.
    note = (DATA_DIR / "pandalm" / "JUDGE_OUTPUTS.md").read_text().replace("**", "")
    for numbers in (PANDALM_SCRIPT[name], PANDALM_PAPER[name]):
        assert " | ".join(f"{x:.2f}" for x in numbers) in note


def test_garbage_counts_as_a_parse_failure_and_a_tie(tmp_path):
    verdicts = read_pandalm(DATA_DIR / "pandalm" / "gpt-3.5-turbo-testset-v1.json")
    assert sum(v.scores is None for v in verdicts) == 25  # 25 "garbage" outputs
    g = compute_metrics(import_verdicts(tmp_path / "s.zarr", load_dataset("pandalm"), verdicts).store)
    g = g["groups"]["without_reference"]
    assert g["parse_failures"] == 25 and sum(g["confusion"][k][1] for k in range(3)) == 38 + 25  # "Tie" + garbage


def test_judgelm_answer_files_with_both_orders(tmp_path):
    data = write_pairs(tmp_path / "d.jsonl", 6)
    seq = tmp_path / "seq.jsonl"
    rev = tmp_path / "rev.jsonl"
    # JudgeLM's files: sorted by question_id; here in reverse order, matched by id, and one record has no verdict
    seq.write_text("".join(json.dumps({"question_id": i, "pred_text": t}) + "\n"
                           for i, t in zip([4, 3, 2, 1, 0], ["9 1", "2 2", "garbled", "9 1", "8 7"])))
    rev.write_text("".join(json.dumps({"question_id": i, "pred_text": t}) + "\n"
                           for i, t in zip([0, 1, 2, 3, 4], ["7 8", "9 1", "5 5", "2 2", "3 4"])))
    result = import_verdicts(tmp_path / "s.zarr", load_dataset(str(data)), read_judgelm(seq), read_judgelm(rev))
    assert (result.records, result.records_without_verdict) == (5, 1)
    g = compute_metrics(result.store)["groups"]["without_reference"]
    # original order, records 0-4: [1, 1, 0 (garbled), 0, 1]; swapped run in the original frame: [1, -1, 0, 0, 1]
    assert g["consistency"] == pytest.approx(4 / 5) and g["parse_failures"] == 1
    assert g["prefer_before"] == 1 and g["prefer_after"] == 0  # record 1: whichever answer came first won
    assert g["first_slot_both"] == 1


def test_generic_verdicts_by_winner_or_scores(tmp_path):
    path = tmp_path / "v.jsonl"
    path.write_text('{"uid": 0, "pick": "A", "a": 7, "b": 2}\n{"uid": 1, "pick": "tie", "a": 5, "b": null}\n')
    by_winner = read_generic(path, GenericFields(id="uid", winner="pick", winner_values={"A": 1, "B": -1, "tie": 0}))
    assert [v.scores for v in by_winner] == [(1.0, 0.0), (0.0, 0.0)]
    by_scores = read_generic(path, GenericFields(id="uid", scores=("a", "b")))
    assert [v.scores for v in by_scores] == [(7.0, 2.0), None]  # a missing score is a parse failure
    with pytest.raises(RecordError) as e:
        read_generic(path, GenericFields(id="uid", winner="pick", winner_values={"A": 1}))
    assert (e.value.source.line, e.value.field) == (2, "pick")


def test_unknown_and_repeated_ids_name_the_verdict_line(tmp_path):
    data = write_pairs(tmp_path / "d.jsonl", 3)
    path = tmp_path / "v.jsonl"
    path.write_text('{"question_id": 0, "pred_text": "1 2"}\n{"question_id": 7, "pred_text": "1 2"}\n')
    with pytest.raises(RecordError) as e:
        import_verdicts(tmp_path / "a.zarr", load_dataset(str(data)), read_judgelm(path))
    assert (e.value.source.path, e.value.source.line, e.value.field) == (str(path), 2, "question_id")
    path.write_text('{"question_id": 0, "pred_text": "1 2"}\n{"question_id": 0, "pred_text": "2 1"}\n')
    with pytest.raises(RecordError, match="second verdict"):
        import_verdicts(tmp_path / "b.zarr", load_dataset(str(data)), read_judgelm(path))


def test_import_command_writes_a_run(tmp_path, capsys):
    assert cli.main(["format=pandalm", "data=pandalm", f"runs_dir={tmp_path}", "run=panda", "judge=PandaLM-7B",
                     f"verdicts={DATA_DIR / 'pandalm' / 'pandalm-7b-testset-v1.json'}"]) == 0
    out = capsys.readouterr().out
    assert "| Agreement | 66.77 |" in out and "imported 999 records" in out
    m = json.loads((tmp_path / "panda" / "metrics.json").read_text())
    assert m["model"] == "PandaLM-7B" and "note" not in m  # not a tiny judge: no warning
    assert m["benchmarks"]["without_reference"]["pandalm"]["rows"][0]["score"] == pytest.approx(0.6677, abs=5e-5)
    assert cli.main(["format=pandalm", "data=pandalm", f"runs_dir={tmp_path}", "run=panda",
                     f"verdicts={DATA_DIR / 'pandalm' / 'pandalm-7b-testset-v1.json'}"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_the_documented_compact_winner_values_and_line_number_ids(tmp_path):
    from omegaconf import OmegaConf

    written = OmegaConf.from_dotlist(["w={A:1,B:-1,tie:0}"]).w  # how `generic.winner_values={A:1,B:-1,tie:0}` arrives
    path = tmp_path / "v.jsonl"
    path.write_text('{"pick": "B"}\n\n{"pick": "tie"}\n')
    verdicts = read_generic(path, GenericFields(id="", winner="pick", winner_values=dict(written)))
    assert [(v.record_id, v.scores) for v in verdicts] == [("1", (0.0, 1.0)), ("3", (0.0, 0.0))]
    shell_safe = read_generic(path, GenericFields(id="", winner="pick", winner_values="A:1,B:-1,tie:0"))
    assert [v.scores for v in shell_safe] == [v.scores for v in verdicts]  # what `make import ARGS=...` can pass
    with pytest.raises(ConfigError, match=r"key True .* quote it"):
        read_generic(path, GenericFields(id="", winner="pick", winner_values={True: 1}))
    with pytest.raises(ConfigError, match=r"'A=1' is not value:label"):
        read_generic(path, GenericFields(id="", winner="pick", winner_values="A=1,B:-1"))


def test_skip_invalid_collects_bad_rows_unknown_ids_and_repeats(tmp_path):
    data = write_pairs(tmp_path / "d.jsonl", 3)
    path = tmp_path / "v.jsonl"
    path.write_text('{"question_id": 0, "pred_text": "1 2"}\n{oops\n{"question_id": 9, "pred_text": "1 2"}\n'
                    '{"question_id": 0, "pred_text": "2 1"}\n{"question_id": 1}\n'
                    '{"question_id": 2, "pred_text": "3 1"}\n')
    rejects = []
    result = import_verdicts(tmp_path / "s.zarr", load_dataset(str(data)), read_judgelm(path, rejects), rejects=rejects)
    assert (result.records, result.records_without_verdict) == (2, 1)
    assert [(r.source.line, r.field) for r in rejects] == [(2, None), (5, "pred_text"), (3, "question_id"),
                                                          (4, "question_id")]
    assert "is not the id of a record" in rejects[2].reason and "second verdict" in rejects[3].reason


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.jsonl", "verdict file not found: "),
    (lambda d: d, "is a directory, not a verdict file"),
])
def test_missing_or_directory_verdict_files_are_one_line(tmp_path, make, message):
    with pytest.raises((RecordError, FileNotFoundError)) as e:
        read_judgelm(make(tmp_path))
    assert message in str(e.value) and "\n" not in str(e.value)
