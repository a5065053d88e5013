"""``make checklists``: RocketEval's checklist creation as a generation run. The prompts are RocketEval's
``create.md`` with the question's reference (or the set's baseline answer); a real HTTP server on 127.0.0.1 plays
the strong model; unparseable texts are counted and left out; the file is what RocketEval grading takes."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from judgelm.data.checklists import load_checklists
from judgelm.generation.checklists import CHECKLIST_FILE, baseline_answers, checklist_questions
from judgelm.generation.questions import Question, load_questions, question_set
from judgelm.generation.store import AnswerStore
from judgelm.profiles.rocketeval import checklist_prompt
from launch import checklists as launch_checklists
from launch import evaluate
from tests.conftest import TINY_CHAT

TINY_JUDGE = TINY_CHAT.parent / "tiny-judge"
QUESTIONS = [("q1", "Name three primary colours.", "Red, yellow and blue."),
             ("q2", "Write a haiku about rain. UNPARSEABLE", "Soft rain on the roof"),
             ("q3", "What is 2 + 2?", "4")]


def test_checklist_prompts_take_the_questions_reference_else_the_baseline():
    qset = question_set("alpaca_eval")
    questions = load_questions(qset, 3)
    prompts, sources = checklist_questions(qset, questions + [Question("x", ("No baseline here?",))])
    baseline = baseline_answers(qset)
    assert [p.question_id for p in prompts] == [q.question_id for q in questions]  # "x" has no reference: left out
    for p, q in zip(prompts, questions):
        assert p.turns == (checklist_prompt(q.turns[0], baseline[str(q.question_id)]).user,)
    assert sources[0] == {"question_id": 0, "question": questions[0].turns[0], "reference": "gpt4_1106_preview"}
    own = Question(7, ("Who?", "And then?"), "writing", ("Me.", "Then you."))
    (p,), (s,) = checklist_questions(qset, [own])  # multi-turn: the first turn, with its own reference
    assert p.turns == (checklist_prompt("Who?", "Me.").user,) and s["reference"] == "question"


def test_tiny_chat_model_checklists_are_counted_not_invented(tmp_path, capsys):
    argv = [f"model.path={TINY_CHAT}", f"runs_dir={tmp_path}", "run=ck", "questions.limit=2", "shards=1",
            "engine.max_new_tokens=24"]
    assert launch_checklists.main(argv) == 0
    out = capsys.readouterr().out
    store = AnswerStore(tmp_path / "ck" / "answers.zarr")
    assert store.attrs["task"] == "checklists" and store.done().all()
    rows = [json.loads(line) for line in (tmp_path / "ck" / CHECKLIST_FILE).read_text().splitlines()]
    parsed = len(rows)
    assert f"Checklists: {parsed} of 2 questions have one" in out and "toy model" in out
    if parsed < 2:
        assert f"{2 - parsed} generated texts have no item RocketEval's parser reads" in out
    assert all(set(r) == {"question", "checklist"} and r["checklist"] for r in rows)  # AlpacaEval: keyed by text


class ChecklistServer(BaseHTTPRequestHandler):
    """A strong model's stand-in behind OpenAI's chat API: a two-item checklist naming the query, or a text without
    a numbered question for a query marked UNPARSEABLE. Keeps every request."""

    requests: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append(body)
        prompt = body["messages"][-1]["content"]
        query = prompt.split("<|begin_of_query|>\n\n")[1].split("\n\n<|end_of_query|>")[0]
        text = ("I would rather not." if "UNPARSEABLE" in query else
                f"## Checklist\n```\n1. Does the response answer \"{query[:12]}\"?\n2. Is the response short?\n```")
        reply = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                 "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                 "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.mark.slow  # two checklist runs against a server, then RocketEval grading of 8 units with the tiny judge
def test_served_checklists_are_cached_and_graded(tmp_path, capsys):
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps({"question_id": i, "turns": [q], "reference": r}) + "\n"
                                 for i, q, r in QUESTIONS))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ChecklistServer)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    served = [f"model.path={TINY_CHAT}", f"runs_dir={tmp_path}", f"questions.source={questions}", "shards=1",
              "engine.backend=openai", "engine.api=chat", f"engine.base_url=http://127.0.0.1:{httpd.server_port}/v1"]
    try:
        assert launch_checklists.main([*served, "run=ck"]) == 0
        out = capsys.readouterr().out
        sent = list(ChecklistServer.requests)
        assert launch_checklists.main([*served, "run=ck-again"]) == 0  # every checklist from the answer cache
        again = capsys.readouterr().out
    finally:
        httpd.shutdown()
    # RocketEval's prompt, byte for byte, one user turn, sampled as RocketEval samples.
    assert sorted(b["messages"][-1]["content"] for b in sent) == sorted(checklist_prompt(q, r).user
                                                                      for _, q, r in QUESTIONS)
    # (the answer store keeps a question's temperature in float32: 0.7 reaches the server as 0.69999999)
    assert all(len(b["messages"]) == 1 and b["temperature"] == pytest.approx(0.7) and b["top_p"] == 0.95
               for b in sent)
    assert len(ChecklistServer.requests) == 3
    assert "Checklists: 2 of 3 questions have one (4 items, 2.0 per question)" in out
    assert "1 generated texts have no item RocketEval's parser reads" in out and "(first: q2)" in out
    assert "3 turns: 3 from the answer cache, 0 generated." in again
    made = load_checklists(tmp_path / "ck" / CHECKLIST_FILE)
    assert made.by_id == {"q1": ['Does the response answer "Name three p"?', "Is the response short?"],
                          "q3": ['Does the response answer "What is 2 + "?', "Is the response short?"]}

    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"question_id": i, "question": q, "model": m, "answer": a}) + "\n"
                               for i, q, r in QUESTIONS for m, a in (("ref-bot", r), ("short-bot", "No idea."))))
    assert evaluate.main([f"model.path={TINY_JUDGE}", f"runs_dir={tmp_path}", "run=graded", "shards=1",
                          f"evaluate.answers=[generic:{answers}]", "judge.profile=rocketeval",
                          "evaluate.pairing=checklist", f"evaluate.checklists={tmp_path / 'ck' / CHECKLIST_FILE}",
                          "evaluate.baseline=ref-bot", "evaluate.reference_verdicts=''", "evaluate.limit=0",
                          "engine.logprobs_topk=4096", "leaderboard.rounds=10"]) == 0
    board = json.loads((tmp_path / "graded" / "leaderboard.json").read_text())["boards"]["checklist"]
    assert board["units"] == 2 * 2 * 2 and board["questions"] == 2  # q2 has no checklist: not graded
    assert {r["model"] for r in board["rows"]} == {"ref-bot", "short-bot"}
