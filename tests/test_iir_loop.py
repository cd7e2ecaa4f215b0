"""IIRLoop on scripted answers: which organs each round examines, the stop rule, the round limit,
organs without masks, substructure fallback, negated mentions, cancel; and a real tiny LM run."""
from __future__ import annotations

import threading
import time

import pytest

from inference.errors import Cancelled
from inference.iir.decoding import SamplingConfig
from inference.iir.generator import ModelRoundGenerator
from inference.iir.interleaved_input import GlobalVisual, OrganVisual, Text
from inference.iir.loop import IIRLoop, IIRSettings
from inference.labels import merged_labels

from iir_fakes import FakeFeatures, ScriptedGenerator, one_torch_thread, simple_matcher, tiny_llm, tiny_tokenizer  # noqa: F401

T = merged_labels()
SPLEEN, LIVER, STOMACH, PANCREAS, GALLBLADDER, DUODENUM = 1, 5, 6, 7, 4, 19
PANCREAS_HEAD, LIVER_S4 = 111, 104
ALL = {SPLEEN: 900, LIVER: 5000, STOMACH: 1200, PANCREAS: 700, DUODENUM: 300}


def _loop(answers, voxels=ALL, step_s=0.0, **settings):
    gen = ScriptedGenerator(answers, step_s=step_s)
    feats = FakeFeatures(voxels, probs={LIVER: 0.9, PANCREAS: 0.2})
    loop = IIRLoop(gen, feats, IIRSettings(**settings), matcher=simple_matcher, table=T)
    return loop, gen, feats


def _organ_ids(segments):
    return [s.label_id for s in segments if isinstance(s, OrganVisual)]


def test_rounds_examine_question_organs_first_then_answer_organs_and_stop_when_none_is_new():
    answers = [
        "The liver has a lesion and the spleen is enlarged. Thus, the answer is liver.",
        "The liver lesion abuts the stomach. Thus, the answer is liver.",
        "The liver and stomach confirm it. Thus, the answer is hepatic lesion.",
    ]
    loop, gen, feats = _loop(answers)
    res = loop.run("Is there a tumor in the pancreas?")
    assert res.stop_reason == "no_new_organ" and len(res.rounds) == 3
    r1, r2, r3 = res.rounds
    # eq. 4: round 1 sees global tokens and the question only
    segs1, vis1 = gen.calls[0]
    assert isinstance(segs1[0], GlobalVisual) and not _organ_ids(segs1) and len(vis1) == 1
    assert r1.organs == [] and r1.named_organs == ["pancreas", "liver", "spleen"]
    assert r1.next_organs == ["pancreas", "liver", "spleen"]
    # round 2: the question's organ first, then the answer's, each after its attention sentence
    segs2, vis2 = gen.calls[1]
    assert _organ_ids(segs2) == [PANCREAS, LIVER, SPLEEN]
    texts = [s.text for s in segs2 if isinstance(s, Text)]
    assert "The question requires greater attention to pancreas." in texts
    assert texts.index("The question requires greater attention to liver.") < texts.index(
        "The question requires greater attention to spleen.")
    assert feats.organ_calls[:3] == [PANCREAS, LIVER, SPLEEN] and len(vis2) == 3
    assert [o.name for o in r2.organs] == ["pancreas", "liver", "spleen"]
    assert r2.mask_labels == [PANCREAS, LIVER, SPLEEN]
    assert [o.abnormal_prob for o in r2.organs] == [0.2, 0.9, 0.5]
    assert r2.prompt.count("<organ_feature>") == 3 and "<ct>" in r1.prompt
    # round 3: only the organ not yet examined
    assert _organ_ids(gen.calls[2][0]) == [STOMACH] and [o.name for o in r3.organs] == ["stomach"]
    assert r3.next_organs == [] and r3.skipped_organs == []
    assert res.conclusion.answer == "hepatic lesion" and res.conclusion.found
    assert res.conclusion.reasoning == "The liver and stomach confirm it."


def test_round_limit_stops_and_records_the_organs_left():
    answers = ["The liver. Thus, the answer is a.", "The spleen. Thus, the answer is b.",
               "The stomach. Thus, the answer is c."]
    loop, gen, _ = _loop(answers, max_rounds=2)
    res = loop.run("What is wrong?")
    assert res.stop_reason == "round_limit" and len(res.rounds) == 2 and len(gen.calls) == 2
    last = res.rounds[-1]
    assert last.next_organs == []
    assert [(s.name, s.reason) for s in last.skipped_organs] == [("spleen", "round limit reached")]
    assert res.conclusion.answer == "b"


def test_one_round_when_nothing_is_named():
    loop, gen, _ = _loop(["Nothing abnormal. Thus, the answer is normal."])
    res = loop.run("Is the scan normal?")
    assert len(res.rounds) == 1 and res.stop_reason == "no_new_organ" and res.conclusion.answer == "normal"


def test_organs_without_a_mask_are_recorded_and_skipped_never_crash():
    answers = [
        "The gallbladder is distended and the liver is enlarged. Thus, the answer is x.",
        "The gallbladder again; duodenum is fine. Thus, the answer is y.",
        "Done. Thus, the answer is z.",
    ]
    voxels = {LIVER: 5000}  # no gallbladder, no duodenum mask in this case
    loop, gen, _ = _loop(answers, voxels=voxels)
    res = loop.run("Any lesion?")
    r1, r2 = res.rounds
    assert [(s.name, s.reason) for s in r1.skipped_organs] == [("gallbladder", "no gallbladder mask in this case")]
    assert r1.next_organs == ["liver"] and _organ_ids(gen.calls[1][0]) == [LIVER]
    # round 2 names only organs without masks (one already reported): stop, report the new one once
    assert [s.name for s in r2.skipped_organs] == ["duodenum"]
    assert res.stop_reason == "no_new_organ" and len(gen.calls) == 2


def test_substructure_without_parts_falls_back_to_its_parent_mask_once():
    answers = [
        "A mass in the pancreatic head. Thus, the answer is x.",
        "The pancreas is dilated and hepatic segment IV shows a nodule. Thus, the answer is y.",
        "Thus, the answer is z.",
    ]
    voxels = {PANCREAS: 700}  # no parts, no liver
    loop, gen, _ = _loop(answers, voxels=voxels)
    res = loop.run("Where is the lesion?")
    r2 = res.rounds[1]
    (org,) = r2.organs
    assert (org.name, org.display, org.mask_label, org.mask_name) == ("pancreas_head", "pancreatic head", PANCREAS, "pancreas")
    assert org.fallback == "no pancreas_head mask in this case; used the pancreas mask"
    assert "attention to pancreatic head." in r2.prompt
    seg = [s for s in gen.calls[1][0] if isinstance(s, OrganVisual)][0]
    assert (seg.label_id, seg.mask_label) == (PANCREAS_HEAD, PANCREAS)
    reasons = {s.name: s.reason for s in r2.skipped_organs}
    assert reasons["pancreas"] == "its tokens come from the pancreas mask, examined in round 2"
    assert reasons["liver_segment_4"] == "no liver_segment_4 mask in this case and no liver mask to fall back on"
    assert res.stop_reason == "no_new_organ" and len(res.rounds) == 2


def test_negated_mentions_policy():
    answers = ["No liver metastasis. The spleen is enlarged. Thus, the answer is x.", "Thus, the answer is y."]
    res = _loop(answers)[0].run("Staging?")
    assert res.rounds[0].next_organs == ["liver", "spleen"]  # default: a negative claim is checked too
    res = _loop(answers, include_negated=False)[0].run("Staging?")
    assert res.rounds[0].next_organs == ["spleen"]


def test_callbacks_stream_each_round_in_order():
    answers = ["The liver is big. Thus, the answer is a.", "Liver confirmed. Thus, the answer is b."]
    loop, _, _ = _loop(answers)
    events = []
    streamed: dict[int, str] = {}
    res = loop.run("Liver?", on_round_start=lambda i, p: events.append(("start", i)),
                   on_text=lambda i, d: streamed.__setitem__(i, streamed.get(i, "") + d),
                   on_round=lambda rnd: events.append(("done", rnd.index)))
    assert events == [("start", 1), ("done", 1), ("start", 2), ("done", 2)]
    assert streamed == {1: answers[0], 2: answers[1]}
    assert res.rounds[0].timings.prefill_ms == 1.0 and res.rounds[1].timings.organ_tokens_ms >= 0


def test_cancel_from_another_thread_mid_round_within_one_step():
    long = " ".join(["word"] * 400) + " Thus, the answer is x."
    loop, gen, _ = _loop([long], step_s=0.002)
    cancel = threading.Event()
    mark = {}

    def canceller():
        while gen.words_emitted < 30:
            time.sleep(0.001)
        cancel.set()
        mark["t"], mark["words"] = time.perf_counter(), gen.words_emitted

    th = threading.Thread(target=canceller)
    th.start()
    with pytest.raises(Cancelled):
        loop.run("Question?", cancel=cancel)
    latency_ms = (time.perf_counter() - mark["t"]) * 1000
    th.join()
    print(f"loop cancel latency {latency_ms:.1f} ms (one step = 2 ms)")
    assert gen.words_emitted - mark["words"] <= 1
    assert gen.words_emitted < 400


def test_cancel_set_before_a_round_starts_runs_nothing():
    loop, gen, _ = _loop(["x"])
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        loop.run("Q?", cancel=cancel)
    assert gen.calls == []


def test_real_tiny_lm_rounds_are_identical_with_and_without_cache_reuse():
    """Question organs force a second round; shared cache and full recompute give the same tokens."""
    results = {}
    for mode in ("shared", "none"):
        llm, tok = tiny_llm(), tiny_tokenizer()
        sampling = SamplingConfig(max_new_tokens=12)
        gen = ModelRoundGenerator(llm, tok, llm.get_input_embeddings(), sampling=sampling, cache_mode=mode)
        loop = IIRLoop(gen, FakeFeatures(ALL), IIRSettings(max_rounds=3, sampling=sampling),
                       matcher=simple_matcher, table=T, tokenizer=tok)
        results[mode] = loop.run("Is the pancreas or the liver abnormal?")
    shared, none = results["shared"], results["none"]
    assert len(shared.rounds) >= 2
    assert [r.organs[0].name for r in shared.rounds[1:2]] == ["pancreas"]
    assert [r.token_ids for r in shared.rounds] == [r.token_ids for r in none.rounds]
    assert [r.text for r in shared.rounds] == [r.text for r in none.rounds]
    assert shared.rounds[1].timings.prompt_tokens < none.rounds[1].timings.prompt_tokens
    assert all(r.timings.generated_tokens == len(r.token_ids) for r in shared.rounds)


def test_default_matcher_is_the_label_matcher_with_its_negation_detection():
    answers = ["No liver metastasis. The spleen is enlarged. Thus, the answer is x.", "Thus, the answer is y."]
    for include, want in ((True, ["liver", "spleen"]), (False, ["spleen"])):
        loop = IIRLoop(ScriptedGenerator(answers), FakeFeatures(ALL), IIRSettings(include_negated=include))
        assert loop.run("Staging?").rounds[0].next_organs == want


def test_two_names_for_one_mask_in_the_same_answer_examine_it_once():
    answers = ["The pancreatic head mass; the pancreas is atrophic. Thus, the answer is x.", "Thus, the answer is y."]
    loop, gen, _ = _loop(answers, voxels={PANCREAS: 700})
    res = loop.run("Where?")
    assert res.rounds[0].next_organs == ["pancreas_head"]
    assert [(s.name, s.reason) for s in res.rounds[0].skipped_organs] == [
        ("pancreas", "its tokens come from the pancreas mask, examined in round 2")]
    assert _organ_ids(gen.calls[1][0]) == [PANCREAS_HEAD]
