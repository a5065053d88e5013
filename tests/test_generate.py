"""Generation runs: question sets, chat templates, multi-turn conversations, answers independent of shards and
attempts, the answer cache, exports that load back, and the command line."""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from judgelm.config import ConfigError, to_yaml
from judgelm.data.answers import load_answers
from judgelm.generation.chat import encode, has_chat_template, render, split_thinking
from judgelm.generation.export import export_run
from judgelm.generation.questions import FASTCHAT_TEMPERATURES, load_questions, question_set, read_question_file
from judgelm.generation.run import create_generation, incomplete_shards, plan_generation
from judgelm.generation.shard import run_shard
from judgelm.generation.store import LENGTH, STOP, AnswerStore
from judgelm.inference.models import load_tokenizer
from judgelm.judging.progress import read_progress
from judgelm.rundir import RunDir
from launch import generate as launch_generate
from launch.configs import load_generate_config
from tests.conftest import TINY_CHAT

REPO = Path(__file__).resolve().parents[1]
TEXTS = ("text", "reasoning", "finish", "new_tokens", "prompt_tokens")


def new_run(tmp_path, model, name, *overrides) -> RunDir:
    cfg = load_generate_config([f"model.path={model}", f"run={name}", f"runs_dir={tmp_path}", *overrides])
    return create_generation(plan_generation(cfg), to_yaml(cfg))


def run_all(rd: RunDir) -> AnswerStore:
    n = int(AnswerStore(rd.answer_store).attrs["n_shards"])
    for k in range(n):
        run_shard(rd.root, k, n, threads=1)
    return AnswerStore(rd.answer_store)


def same_answers(a: AnswerStore, b: AnswerStore) -> None:
    order_a, order_b = np.argsort(a.units("question") * 100 + a.units("sample")), \
        np.argsort(b.units("question") * 100 + b.units("sample"))
    for name in TEXTS:
        np.testing.assert_array_equal(a.answers(name)[order_a], b.answers(name)[order_b], err_msg=name)


def test_question_sets():
    alpaca = load_questions(question_set("alpaca_eval"))
    assert len(alpaca) == 805 and alpaca[0].question_id == 0 and len(alpaca[0].turns) == 1
    assert {q.category for q in alpaca} == {"helpful_base", "koala", "oasst", "selfinstruct", "vicuna"}
    mt = question_set("mt_bench")
    questions = load_questions(mt)
    assert len(questions) == 80 and all(len(q.turns) == 2 for q in questions)
    assert sum(bool(q.references) for q in questions) >= 30  # GPT-4's answers to math, reasoning, coding
    assert mt.temperatures == FASTCHAT_TEMPERATURES and mt.temperatures["writing"] == 0.7
    spread = load_questions(mt, limit=8)
    assert len({q.category for q in spread}) == 8  # a quick run still samples every category


def test_question_files(tmp_path):
    fastchat = tmp_path / "q.jsonl"
    fastchat.write_text('{"question_id": 7, "turns": ["Hi?", "And then?"], "category": "chat", "reference": "R"}\n'
                        '{"question_id": "x", "turns": ["Only one"]}\n')
    qs = read_question_file(fastchat)
    assert [q.question_id for q in qs] == [7, "x"] and qs[0].turns == ("Hi?", "And then?")
    assert qs[0].references == ("R",) and qs[1].category == ""
    alpaca = tmp_path / "a.json"
    alpaca.write_text(json.dumps([{"instruction": "Say hi", "dataset": "d"}, {"instruction": "Say bye"}]))
    assert [(q.question_id, q.turns, q.category) for q in read_question_file(alpaca)] == [
        (0, ("Say hi",), "d"), (1, ("Say bye",), "")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question_id": 1, "turns": []}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: field 'turns': expected a non-empty list"):
        read_question_file(bad)
    with pytest.raises(ConfigError, match="neither a question set"):
        question_set("no_such_set")


def test_thinking_is_kept_apart():
    assert split_thinking("<think>plan</think>\n\nThe answer.") == ("plan", "The answer.")
    assert split_thinking("plan</think>answer") == ("plan", "answer")  # the template opened the block
    assert split_thinking("<think>never closed") == ("never closed", "")
    assert split_thinking("No thinking here.") == ("", "No thinking here.")


def test_a_tokenizer_without_a_chat_template_is_refused_unless_one_is_named(tmp_path, capsys):
    judge = REPO / "models" / "tiny-judge"  # a plain LM tokenizer: no chat template
    args = [f"model.path={judge}", f"runs_dir={tmp_path}", "questions.limit=2", "engine.max_new_tokens=4"]
    assert launch_generate.main([*args, "run=refused"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: model.path=") and "generate.chat_template=" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "refused").exists()
    rd = new_run(tmp_path, judge, "named", "questions.limit=2", "engine.max_new_tokens=4",
                 "generate.chat_template=plain")
    assert (rd.root / "chat_template.jinja").read_text().startswith("{{- bos_token }}")


def test_whether_a_model_has_a_chat_template_is_read_from_its_files_as_its_tokenizer_says(tmp_path):
    """The files answer where they hold a template; the tokenizer decides where they hold none."""
    in_config = tmp_path / "in-config"
    shutil.copytree(TINY_CHAT, in_config)
    template = (in_config / "chat_template.jinja").read_text()
    (in_config / "chat_template.jinja").unlink()
    config = json.loads((in_config / "tokenizer_config.json").read_text())
    (in_config / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": template}))
    for model in (TINY_CHAT, in_config, REPO / "models" / "tiny-judge"):
        assert has_chat_template(str(model)) == bool(load_tokenizer(str(model)).chat_template), model
    assert has_chat_template(str(in_config)) and not has_chat_template(str(REPO / "models" / "tiny-judge"))


def test_a_generation_run_is_created_without_torch_unless_its_answer_cache_has_entries(tmp_path):
    """Loading the tokenizer imports torch and transformers: 2.5 of the 3.1 s make generate spent creating a run.
    A run only needs it to look up answers the cache may hold."""
    code = ("import sys; from launch.configs import load_generate_config; from judgelm.config import to_yaml; "
            "from judgelm.generation.run import create_generation, plan_generation; "
            f"cfg = load_generate_config(['model.path={TINY_CHAT}', 'runs_dir={tmp_path}', 'run=' + sys.argv[1], "
            "'questions.limit=2', 'engine.max_new_tokens=4', 'shards=1']); "
            "create_generation(plan_generation(cfg), to_yaml(cfg)); print('torch' in sys.modules)")
    def create(name: str) -> str:
        return subprocess.run([sys.executable, "-c", code, name], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()

    assert create("first") == "False"
    run_all(RunDir(tmp_path / "first"))  # its answers fill the cache: the next run looks them up
    assert create("again") == "True" and incomplete_shards(RunDir(tmp_path / "again"), 1) == []


def test_a_sets_token_budget_the_context_cannot_hold_is_halved_and_a_given_one_refused(tmp_path, capsys, caplog):
    """AlpacaEval's 2048 new tokens leave no room for a prompt in the tiny chat model's 2048-token context: a bare
    ``make generate`` takes half the context, saying so; the same number given by the user is a mistake."""
    args = [f"model.path={TINY_CHAT}", f"runs_dir={tmp_path}", "questions.limit=2"]
    with caplog.at_level(logging.WARNING, "judgelm.generation.run"):
        planned = plan_generation(load_generate_config([*args, "run=bare"]))
    assert planned.cfg.engine.max_new_tokens == 1024 and "1024 new tokens instead" in caplog.text
    capsys.readouterr()  # the warning, where an earlier launcher left its log handler
    assert launch_generate.main([*args, "run=given", "engine.max_new_tokens=2048"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: engine.max_new_tokens=2048 leaves no room") and len(err.splitlines()) == 1


def test_multi_turn_answers_are_the_same_with_one_or_three_shards(tmp_path):
    """MT-Bench: the second turn is asked after the model's own first answer; greedy answers do not depend on how
    the questions are sharded, chunked or batched."""
    args = ("questions.source=mt_bench", "questions.limit=8", "engine.max_new_tokens=6", "answer_cache=false")
    one = run_all(new_run(tmp_path, TINY_CHAT, "one", *args, "shards=1"))
    three = run_all(new_run(tmp_path, TINY_CHAT, "three", *args, "shards=3", "store.chunk_units=1"))
    same_answers(one, three)
    finish = one.answers("finish")
    assert one.done().all() and np.isin(finish, [STOP, LENGTH]).all()  # both turns of all 8 questions
    # turn 2's prompt is the whole conversation: turn 1, the model's answer to it, turn 2
    tok = load_tokenizer(str(TINY_CHAT))
    turns, q = one.questions("turns"), one.units("question")
    for u in range(one.n_units):
        conv = render(tok, [("user", turns[q[u]][0]), ("assistant", one.answers("text")[u][0]),
                            ("user", turns[q[u]][1])], None)
        assert one.answers("prompt_tokens")[u][1] == len(encode(tok, [conv])[0])
    # writing questions sample at FastChat's 0.7, math and coding greedily
    temps = dict(zip(one.questions("category"), one.questions("temperature")))
    assert temps["writing"] == pytest.approx(0.7) and temps["math"] == 0.0 and temps["stem"] == pytest.approx(0.1)


def test_sampled_answers_are_seeded_per_question_turn_and_sample(tmp_path, random_chat_models):
    args = ("questions.limit=4", "engine.max_new_tokens=8", "engine.temperature=1.0", "generate.n=2")
    a = run_all(new_run(tmp_path / "a", random_chat_models[0], "a", *args, "shards=1"))
    b = run_all(new_run(tmp_path / "b", random_chat_models[0], "b", *args, "shards=2", "store.chunk_units=1"))
    same_answers(a, b)  # separate runs directories: b's answers were sampled, not taken from a's cache
    text, sample, question = a.answers("text")[:, 0], a.units("sample"), a.units("question")
    for q in range(4):
        first, second = text[(question == q) & (sample == 0)][0], text[(question == q) & (sample == 1)][0]
        assert first != second  # two samples, two seeds


def test_the_answer_cache_makes_a_rerun_generate_nothing(tmp_path, random_chat_models):
    args = ("questions.limit=5", "engine.max_new_tokens=6", "shards=2", "store.chunk_units=2")
    first = new_run(tmp_path, random_chat_models[0], "first", *args)
    assert incomplete_shards(first, 2) == [0, 1] and AnswerStore(first.answer_store).counts()["turns"] == 0
    run_all(first)
    again = new_run(tmp_path, random_chat_models[0], "again", *args)
    store = AnswerStore(again.answer_store)
    assert incomplete_shards(again, 2) == [] and store.counts()["from_cache"] == store.counts()["turns"] == 5
    assert (store.answers("attempt") == -1).all()  # committed at creation, from the cache
    same_answers(store, AnswerStore(first.answer_store))
    other = new_run(tmp_path, random_chat_models[0], "longer", *args[:1], "engine.max_new_tokens=7", *args[2:])
    assert incomplete_shards(other, 2) == [0, 1]  # another setting is another answer
    assert "6 generated" not in export_run(first.root) and "0 from the answer cache, 5 generated" in \
        export_run(first.root)
    assert "5 from the answer cache, 0 generated" in export_run(again.root)


def test_exported_answers_load_back(tmp_path, random_chat_models):
    rd = new_run(tmp_path, random_chat_models[1], "mt", "questions.source=mt_bench", "questions.limit=3",
                 "engine.max_new_tokens=5", "generate.n=2", "shards=1")
    store = run_all(rd)
    export_run(rd.root)
    rows = [json.loads(x) for x in (rd.root / "model_answer" / "chat-b.jsonl").read_text().splitlines()]
    assert [r["question_id"] for r in rows] == [q for q in store.question_ids()]
    assert all(r["model_id"] == "chat-b" and len(r["answer_id"]) == 22 and r["tstamp"] > 0 for r in rows)
    assert [c["index"] for c in rows[0]["choices"]] == [0, 1] and len(rows[0]["choices"][0]["turns"]) == 2
    text, q, s = store.answers("text"), store.units("question"), store.units("sample")
    first = text[(q == 0) & (s == 0)][0]
    assert rows[0]["choices"][0]["turns"] == list(first)
    data = load_answers(f"fastchat:{rd.root}")  # the project's own loader reads the directory as FastChat's
    assert data.models == ["chat-b"] and data.answers[str(rows[0]["question_id"])]["chat-b"] == tuple(first)
    assert data.questions[str(rows[0]["question_id"])].text == store.questions("turns")[0][0]

    single = new_run(tmp_path, random_chat_models[1], "alpaca", "questions.limit=3", "engine.max_new_tokens=5",
                     "shards=1")
    store = run_all(single)
    export_run(single.root)
    outputs = json.loads((single.root / "alpaca_eval_outputs.json").read_text())
    assert set(outputs[0]) == {"instruction", "output", "generator", "dataset"}
    for spec in (f"alpaca_eval:{single.root / 'alpaca_eval_outputs.json'}", f"fastchat:{single.root}"):
        data = load_answers(spec)
        assert [a["chat-b"][0] for a in data.answers.values()] == [t[0] for t in fastchat_texts(store)]
        assert [q.text for q in data.questions.values()] == [t[0] for t in store.questions("turns")]


def fastchat_texts(store: AnswerStore) -> list:
    """The first sample's turns per question, in question order."""
    text, q, s = store.answers("text"), store.units("question"), store.units("sample")
    return [text[(q == i) & (s == 0)][0] for i in range(store.n_questions)]


def test_mt_bench_generates_both_turns_of_its_80_questions(tmp_path):
    store = run_all(new_run(tmp_path, TINY_CHAT, "mt", "questions.source=mt_bench", "engine.max_new_tokens=4",
                            "shards=1", "store.chunk_units=80"))
    assert store.n_questions == store.n_units == 80 and store.n_turns == 2 and store.done().all()
    assert np.isin(store.answers("finish"), [STOP, LENGTH]).all()
    assert (store.answers("prompt_tokens")[:, 1] > store.answers("prompt_tokens")[:, 0]).all()


@pytest.mark.slow  # a shard process killed mid-run, then two in-process runs
def test_a_killed_shard_resumes_to_the_same_answers(tmp_path, random_chat_models):
    args = ("questions.limit=12", "engine.max_new_tokens=24", "shards=1", "store.chunk_units=2", "answer_cache=false")
    killed = new_run(tmp_path, random_chat_models[0], "killed", *args)
    proc = subprocess.Popen([sys.executable, "-c", "from judgelm.generation.shard import run_shard; "
                             f"run_shard({str(killed.root)!r}, 0, 1, threads=1)"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        p = read_progress(killed.shard_progress(0))
        if p and p.units_done >= 2:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = int(AnswerStore(killed.answer_store).done().sum())
    assert 0 < done_at_kill < 12, "the shard must be killed in the middle"
    resumed = run_all(killed)
    attempts = resumed.answers("attempt")
    assert (attempts == 0).sum() == done_at_kill and (attempts == 1).sum() == 12 - done_at_kill
    same_answers(resumed, run_all(new_run(tmp_path, random_chat_models[0], "clean", *args)))
    assert [a.state for a in read_progress(killed.shard_progress(0)).attempts] == ["lost", "finished"]


def test_command_line(tmp_path, capsys):
    assert launch_generate.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "generate.n=1" in out and "questions.source=alpaca_eval" in out and "engine.max_new_tokens=0" in out
    assert launch_generate.main(["dry_run=true", "cluster=a100", f"runs_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "# plan" in out and "GPU per task" in out and not any(tmp_path.iterdir())
    for bad, says in (("questions.source=nope", "neither a question set"), ("engine.mode=fast", "engine.mode=full"),
                      ("generate.nn=2", "unknown setting 'generate.nn'")):
        assert launch_generate.main([bad, f"runs_dir={tmp_path}"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and says in err, err
