"""Evaluation pieces: answer scoring, Table 1 columns, the OpenAI-compatible judge (against a local fake
server), TumorChain-Eval's FC/IC/LRC arithmetic, and the Markdown/PNG reports."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from training.eval_metrics import choose_option, column_table, normalize, open_match, reference_option, score_answer, token_f1

OPTIONS = ["pancreatic body", "pancreatic tail", "pancreatic head"]


@pytest.mark.parametrize("answer, expected", [
    ("C. pancreatic head", 2),
    ("c) Pancreatic Head.", 2),
    ("pancreatic head", 2),
    ("A. pancreatic head", 2),  # the content decides when letter and text disagree
    ("B", 1),
    ("B.", 1),
    ("The lesion is in the pancreatic tail", 1),
    ("pancreatic head or pancreatic tail", None),  # two options named: no choice
    ("D. spleen", None),
])
def test_choose_option(answer, expected):
    assert choose_option(answer, OPTIONS) == expected


def test_scoring_rules():
    assert reference_option("C. pancreatic head", OPTIONS) == 2
    assert score_answer("C. pancreatic head", "C. pancreatic head", OPTIONS) == (True, "choice")
    assert score_answer("B. pancreatic tail", "C. pancreatic head", OPTIONS) == (False, "choice")
    assert normalize("The  Pancreatic-Head.") == "pancreatic-head"
    assert open_match("two", "2") and open_match("2 lesions", "2") and not open_match("3", "2")
    assert open_match("Hepatic segment VII", "hepatic segment VII")
    assert not open_match("hepatic segment VI", "hepatic segment VII")
    assert open_match("located in the gastric antrum", "gastric antrum")
    assert not open_match("not the gastric body but the gastric antrum region", "gastric antrum")
    assert token_f1("a b c", "a b c") == 1.0 and token_f1("x", "y") == 0.0


def test_column_table_average_skips_empty_columns():
    rows = [{"subtask": "organ_position", "correct": True}, {"subtask": "organ_position", "correct": False},
            {"subtask": "T", "correct": True}]
    t = column_table(rows)
    assert t["columns"]["organ_position"]["accuracy"] == 0.5
    assert t["columns"]["shape"]["accuracy"] is None
    assert t["avg"] == pytest.approx(0.75)
    assert [c["title"] for c in t["columns"].values()][:3] == ["Organ Pos.", "Tumor Pos.", "Seg. Loc."]


class _FakeJudge(BaseHTTPRequestHandler):
    """An OpenAI-compatible /v1/chat/completions that answers by the prompt's kind."""

    calls: list = []

    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _FakeJudge.calls.append((self.path, self.headers.get("Authorization"), body))
        system = body["messages"][0]["content"]
        user = body["messages"][1]["content"]
        if "triples" in system or "fact-extraction" in system:
            text = "(pancreatic head, shows, hypodense mass); (liver, shows, metastasis)"
        elif "S1 Finding Chain" in system:
            text = ("```json\n{\"scoring\": {\"s1_finding\": {\"existence_match\": \"8/10\", \"completeness\": \"7/10\", "
                    "\"accuracy\": \"9/10\"}, \"s2_impression\": {\"clarity\": \"6/10\", \"consistency\": 6, "
                    "\"medical_utility\": \"6/10\"}, \"s3_reasoning\": {\"logical_completeness\": \"5/10\", "
                    "\"reasoning_depth\": \"5/10\", \"clinical_relevance\": \"5/10\", \"evidence_integration\": \"5/10\"}}}\n```")
        else:
            text = json.dumps({"question_type": "open", "key_focus": "x", "correct": "head" in user.split("Model answer:")[1],
                               "reason": "same finding"})
        out = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


@pytest.fixture()
def judge_url():
    server = HTTPServer(("127.0.0.1", 0), _FakeJudge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _FakeJudge.calls = []
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_judge_client_and_semantic_match(judge_url):
    from training.judge import Judge

    judge = Judge(judge_url, model="qwen-judge", api_key="k123")
    ok, reason = judge.semantic_match("Where?", "pancreatic head", "the head of the pancreas")
    assert ok is True and reason == "same finding"
    assert judge.semantic_match("Where?", "pancreatic head", "tail")[0] is False
    path, auth, body = _FakeJudge.calls[0]
    assert path == "/v1/chat/completions" and auth == "Bearer k123" and body["model"] == "qwen-judge"
    assert body["temperature"] == 0.0


def test_cot_eval_scores_and_weights(judge_url):
    from training.cot_eval import aggregate, score_cot
    from training.judge import Judge

    s = score_cot(Judge(judge_url), "GT report text", "Predicted report text")
    assert s.gt_triples == [("pancreatic head", "shows", "hypodense mass"), ("liver", "shows", "metastasis")]
    assert s.fc == pytest.approx(80.0) and s.ic == pytest.approx(60.0) and s.lrc == pytest.approx(50.0)
    assert s.cot_e == pytest.approx(0.3 * 80 + 0.3 * 60 + 0.4 * 50)
    agg = aggregate([s, s])
    assert agg["n"] == 2 and agg["CoT_e"] == pytest.approx(s.cot_e)


def test_judge_errors_are_clear():
    from inference.errors import InputError
    from training.judge import Judge, JudgeError, parse_json_reply

    with pytest.raises(InputError, match="http"):
        Judge("localhost:8000")
    with pytest.raises(JudgeError, match="no JSON"):
        parse_json_reply("I think it is correct")
    dead = Judge("http://127.0.0.1:9", retries=0, timeout_s=2)
    with pytest.raises(JudgeError, match="failed after 1 tries"):
        dead.chat("s", "u")


def test_reports_markdown_and_png(tmp_path):
    from training.eval_report import write_reports
    from training.evaluate import summarize

    rows = []
    for mode, ok in (("iir", True), ("no_iir", False)):
        for sub in ("organ_position", "tumor_position", "report"):
            rows.append({"id": sub, "subtask": sub, "mode": mode, "correct": ok, "rounds": 2 if mode == "iir" else 1,
                         "token_f1": 0.5})
    res = summarize(rows, ("iir", "no_iir"))
    res["n_samples"] = 3
    paths = write_reports(res, tmp_path)
    md = paths["md"].read_text()
    assert "| with IIR | 100.0 | 100.0 |" in md and "| w/o IIR | 0.0 | 0.0 |" in md
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(paths["json"].read_text())["modes"]["iir"]["avg"] == 1.0


def test_roc_auc_counts_ties_half_and_matches_the_pairwise_definition():
    import random

    from training.classifier_eval import roc_auc

    rng = random.Random(0)
    scores = [rng.choice([0.1, 0.2, 0.2, 0.5, 0.9]) for _ in range(300)]
    labels = [int(rng.random() < 0.3) for _ in scores]
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    pairwise = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))
    assert abs(roc_auc(scores, labels) - pairwise) < 1e-12
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert roc_auc([0.3, 0.3], [0, 1]) == 0.5
    assert roc_auc([0.2, 0.4], [1, 1]) is None
