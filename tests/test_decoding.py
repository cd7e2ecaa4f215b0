"""KVDecoder: shared-cache rounds give the same tokens as recomputing; sampling; stop; cancel;
streaming text deltas; the interleaved sequence builder."""
from __future__ import annotations

import threading
import time

import pytest
import torch

from inference.errors import Cancelled, ModelError
from inference.iir.decoding import KVDecoder, SamplingConfig, sample_token
from inference.iir.detokenize import IncrementalDetokenizer
from inference.iir.generator import ModelRoundGenerator
from inference.iir.interleaved_input import GlobalVisual, Ids, OrganVisual, SequenceBuilder, Text
from inference.model.visual_inputs import scatter_visual
from inference.iir.prompts import OrganRef, chain_segments, followup_segments, load_template, round1_segments

from iir_fakes import one_torch_thread, tiny_llm, tiny_tokenizer, visual  # noqa: F401 (autouse fixture)

K = 64
TEMPLATE = load_template()


def _three_rounds(mode: str, sampling: SamplingConfig, llm=None, prefill_chunk: int = 512):
    """A 3-round IIR context: global + question, then 2 organs, then 1 organ."""
    llm = llm or tiny_llm()
    tok = tiny_tokenizer()
    gen = ModelRoundGenerator(llm, tok, llm.get_input_embeddings(), sampling=sampling, cache_mode=mode)
    gen.decoder.prefill_chunk = prefill_chunk
    plan = [
        (round1_segments(TEMPLATE, "Where is the lesion in the liver?", 6), [visual(6, K, 1)]),
        (followup_segments(TEMPLATE, [OrganRef(5, "liver", 5), OrganRef(1, "spleen", 1)], 3),
         [visual(3, K, 5), visual(3, K, 6)]),
        (followup_segments(TEMPLATE, [OrganRef(7, "pancreas", 7)], 3), [visual(3, K, 7)]),
    ]
    return [gen.generate(segs, vis) for segs, vis in plan], gen


@pytest.mark.parametrize("sampling", [
    SamplingConfig(max_new_tokens=12),  # greedy, may stop on eos
    SamplingConfig(max_new_tokens=9, ignore_eos=True),
    SamplingConfig(max_new_tokens=10, temperature=0.8, top_p=0.9, top_k=50, seed=3),
])
def test_shared_cache_gives_the_same_tokens_as_recomputing(sampling):
    shared, g_shared = _three_rounds("shared", sampling)
    per_round, _ = _three_rounds("per_round", sampling)
    none, _ = _three_rounds("none", sampling)
    assert [g.ids for g in shared] == [g.ids for g in per_round] == [g.ids for g in none]
    assert all(g.ids for g in shared)
    # shared prefills only the new part each round; the baseline re-prefills the growing context
    assert shared[1].prefill_tokens < per_round[1].prefill_tokens
    assert shared[2].prefill_tokens < per_round[2].prefill_tokens
    assert per_round[2].prefill_tokens == shared[0].prefill_tokens + shared[1].prefill_tokens \
        + shared[2].prefill_tokens + len(shared[0].ids) + len(shared[1].ids) - 2
    # the cache holds every token of the context except the last sampled one
    assert g_shared.decoder._cache.get_seq_length() == shared[2].context_tokens - len(g_shared.decoder._pending)


def test_chunked_prefill_matches_one_shot_prefill():
    one, _ = _three_rounds("shared", SamplingConfig(max_new_tokens=8, ignore_eos=True))
    chunked, _ = _three_rounds("shared", SamplingConfig(max_new_tokens=8, ignore_eos=True), prefill_chunk=5)
    assert [g.ids for g in one] == [g.ids for g in chunked]


def test_seeded_sampling_repeats_and_differs_by_seed():
    a, _ = _three_rounds("shared", SamplingConfig(max_new_tokens=10, temperature=1.5, seed=1, ignore_eos=True))
    b, _ = _three_rounds("shared", SamplingConfig(max_new_tokens=10, temperature=1.5, seed=1, ignore_eos=True))
    c, _ = _three_rounds("shared", SamplingConfig(max_new_tokens=10, temperature=1.5, seed=2, ignore_eos=True))
    assert [g.ids for g in a] == [g.ids for g in b]
    assert [g.ids for g in a] != [g.ids for g in c]


def test_sample_token_truncation():
    logits = torch.tensor([0.0, 5.0, 4.9, -3.0, 1.0])
    gen = torch.Generator().manual_seed(0)
    assert sample_token(logits, SamplingConfig(), None) == 1
    picks = {sample_token(logits, SamplingConfig(temperature=1.0, top_k=2), gen) for _ in range(200)}
    assert picks == {1, 2}
    # p(1) = 0.52, p(2) = 0.47: top_p 0.6 keeps both, never the tail; top_p 0.5 keeps token 1 alone
    picks = {sample_token(logits, SamplingConfig(temperature=1.0, top_p=0.6), gen) for _ in range(200)}
    assert picks == {1, 2}
    picks = {sample_token(logits, SamplingConfig(temperature=1.0, top_p=0.5), gen) for _ in range(50)}
    assert picks == {1}


def test_stops_on_end_of_answer_and_appends_it_after_a_cut_answer():
    llm, tok = tiny_llm(), tiny_tokenizer()
    emb = llm.get_input_embeddings()
    probe = KVDecoder(llm, emb, tok, stop_ids=[], sampling=SamplingConfig(max_new_tokens=6))
    ids = probe.generate(emb(torch.tensor([tok("The liver").input_ids]))).ids
    # make the 4th greedy token the stop id: the round ends there, the stop id is not text
    dec = KVDecoder(llm, emb, tok, stop_ids=[ids[3]], end_of_answer_id=tok.eos_token_id,
                    sampling=SamplingConfig(max_new_tokens=6))
    g = dec.generate(emb(torch.tensor([tok("The liver").input_ids])))
    first = ids.index(ids[3])
    assert g.ids == ids[:first + 1] and g.stop_reason == "eos"
    assert dec._pending == [ids[3]]  # fed with the next round, as the model produced it
    # an answer cut by max_new_tokens gets the end-of-answer id, as in training sequences
    cut = KVDecoder(llm, emb, tok, stop_ids=[], end_of_answer_id=tok.eos_token_id,
                    sampling=SamplingConfig(max_new_tokens=3))
    g = cut.generate(emb(torch.tensor([tok("The liver").input_ids])))
    assert g.stop_reason == "max_new_tokens" and g.ids == ids[:3]
    assert cut._pending == [ids[2], tok.eos_token_id]
    assert cut.context_tokens == len(tok("The liver").input_ids) + 3 + 1


def test_cancel_from_the_stream_callback_stops_before_the_next_forward():
    llm, tok = tiny_llm(), tiny_tokenizer()
    emb = llm.get_input_embeddings()
    dec = KVDecoder(llm, emb, tok, stop_ids=[], sampling=SamplingConfig(max_new_tokens=200, ignore_eos=True))
    cancel = threading.Event()
    seen: list[str] = []
    calls_at_set: list[int] = []

    def on_text(delta):
        seen.append(delta)
        if len(seen) == 5:
            cancel.set()
            calls_at_set.append(dec.forward_calls)

    with pytest.raises(Cancelled):
        dec.generate(emb(torch.tensor([tok("The liver").input_ids])), on_text=on_text, cancel=cancel)
    assert dec.forward_calls == calls_at_set[0]  # not one forward after the cancel
    with pytest.raises(RuntimeError, match="cancelled"):
        dec.generate(emb(torch.tensor([tok("x").input_ids])))


def test_cancel_from_another_thread_lands_within_one_token_step():
    llm, tok = tiny_llm(hidden=128, layers=4), tiny_tokenizer()
    emb = llm.get_input_embeddings()
    dec = KVDecoder(llm, emb, tok, stop_ids=[], sampling=SamplingConfig(max_new_tokens=4000, ignore_eos=True))
    cancel = threading.Event()
    marks: dict[str, float] = {}

    def canceller():
        while dec.forward_calls < 20:
            time.sleep(0.0005)
        cancel.set()
        marks["t_set"] = time.perf_counter()
        marks["calls"] = dec.forward_calls

    th = threading.Thread(target=canceller)
    th.start()
    t0 = time.perf_counter()
    with pytest.raises(Cancelled):
        dec.generate(emb(torch.tensor([tok("The liver").input_ids])), cancel=cancel)
    t_end = time.perf_counter()
    th.join()
    step_s = (marks["t_set"] - t0) / marks["calls"]
    print(f"cancel latency {1000 * (t_end - marks['t_set']):.2f} ms, one step {1000 * step_s:.2f} ms")
    assert dec.forward_calls - marks["calls"] <= 1  # at most the step already under way


def test_streamed_deltas_rebuild_the_text_without_broken_characters():
    tok = tiny_tokenizer()
    text = "Café au lait → größer; 肝脏 病变 ✓ naïve"
    ids = tok(text, add_special_tokens=False).input_ids
    assert len(ids) > len(text.split())  # multi-byte characters span several tokens
    det = IncrementalDetokenizer(tok)
    deltas = [det.push(i) for i in ids] + [det.flush()]
    assert "".join(deltas) == tok.decode(ids) == text
    assert all("\ufffd" not in d for d in deltas)
    assert sum(1 for d in deltas if d) > 5  # really streamed, not one blob at the end
    # special tokens (end-of-answer) produce no text
    det = IncrementalDetokenizer(tok)
    assert det.push(tok.eos_token_id) == "" and det.flush() == ""


def test_decoder_stream_equals_generation_text():
    llm, tok = tiny_llm(), tiny_tokenizer()
    gen = ModelRoundGenerator(llm, tok, llm.get_input_embeddings(),
                              sampling=SamplingConfig(max_new_tokens=25, temperature=1.0, seed=4, ignore_eos=True))
    got: list[str] = []
    g = gen.generate(round1_segments(TEMPLATE, "Where?", 6), [visual(6, K, 1)], on_text=got.append)
    assert "".join(got) == g.text == tok.decode(g.ids, skip_special_tokens=True)
    assert g.new_tokens == 25 and g.prefill_ms > 0 and g.decode_ms > 0 and g.tokens_per_s > 0


def test_sequence_builder_places_visual_runs_and_answer_labels():
    tok = tiny_tokenizer()
    b = SequenceBuilder(tok)
    segs = chain_segments(TEMPLATE, "Is the liver normal?",
                          [("The liver is fine. Thus, the answer is yes.", [OrganRef(5, "liver", 5)]),
                           ("Liver normal. Thus, the answer is yes.", [])],
                          tok.eos_token_id, n_global=6, n_organ=3)
    seq = b.build(segs, start_position=10)
    ids = seq.input_ids.tolist()
    assert ids[:6] == [b.ct_id] * 6 and ids.count(b.ct_id) == 6 and ids.count(b.organ_id) == 3
    assert [(s.kind, s.length) for s in seq.slots] == [("global", 6), ("organ", 3)]
    assert ids[seq.slots[1].start:seq.slots[1].start + 3] == [b.organ_id] * 3
    assert seq.position_ids.tolist() == list(range(10, 10 + len(ids)))
    labelled = seq.labels()[seq.labels_mask].tolist()
    want = tok("The liver is fine. Thus, the answer is yes.").input_ids + [tok.eos_token_id] \
        + tok("Liver normal. Thus, the answer is yes.").input_ids + [tok.eos_token_id]
    assert labelled == want
    assert (seq.labels()[~seq.labels_mask] == -100).all()
    text = tok.decode(ids, skip_special_tokens=True)
    assert "The question requires greater attention to liver." in text
    # a question that types a placeholder cannot inject one
    typed = b.build([Text("look at <ct> and <organ_feature>")]).input_ids.tolist()
    assert b.ct_id not in typed and b.organ_id not in typed


def test_visual_embeddings_are_scattered_into_their_slots():
    llm, tok = tiny_llm(), tiny_tokenizer()
    emb = llm.get_input_embeddings()
    b = SequenceBuilder(tok)
    seq = b.build([GlobalVisual(4), Text("hi"), OrganVisual(5, 2), Ids((7, 8))])
    g, o = visual(4, K, 1), visual(2, K, 2)
    ids = seq.input_ids[None]
    with torch.no_grad():
        out = scatter_visual(scatter_visual(emb(ids), ids, b.ct_id, g, "global"), ids, b.organ_id, o, "organ")
    assert out.shape == (1, len(seq), K)
    assert torch.equal(out[:, :4], g) and torch.equal(out[:, seq.slots[1].start:seq.slots[1].start + 2], o)
    assert torch.equal(out[:, -2:], emb(torch.tensor([[7, 8]])))
    with pytest.raises(ValueError, match="placeholders"):
        scatter_visual(emb(ids), ids, b.organ_id, visual(3, K, 2), "organ")
    gen = ModelRoundGenerator(llm, tok, emb)
    with pytest.raises(ValueError, match="needs"):
        gen.generate(seq_segments := [GlobalVisual(4), Text("hi")], [visual(3, K, 1)])
    assert seq_segments


def test_tokenizer_without_placeholders_is_a_model_error():
    from transformers import AutoTokenizer  # noqa: F401  (only the error path is tested)

    class NoSpecials:
        unk_token_id = None

        def convert_tokens_to_ids(self, t):
            return None

    with pytest.raises(ModelError, match="<ct>"):
        SequenceBuilder(NoSpecials())


def test_training_sequence_reproduces_the_context_inference_decoded(tmp_path):
    """Teacher forcing the training sequence built from the generated answers predicts exactly
    those answers: training and inference see the same ids, placeholders and positions."""
    from inference.iir.prompts import training_sequence
    from inference.model.modeling_tumorchain import TumorChainModel

    from iir_fakes import write_tiny_model

    model = TumorChainModel.from_pretrained(write_tiny_model(tmp_path), device="cpu", dtype="float32")
    tok = model.tokenizer
    gen = ModelRoundGenerator.for_model(model, sampling=SamplingConfig(max_new_tokens=7))
    g, (o5, o7) = visual(256, 64, 1), (visual(4, 64, 5), visual(4, 64, 7))
    organs = [OrganRef(5, "liver", 5), OrganRef(7, "pancreas", 7)]
    a1 = gen.generate(round1_segments(TEMPLATE, "Where is the lesion?", 256), [g])
    a2 = gen.generate(followup_segments(TEMPLATE, organs, 4), [o5, o7])

    def body(a):  # the answer without its stop id (training appends the end-of-answer id)
        return a.ids[:-1] if a.stop_reason == "eos" else a.ids

    seq = training_sequence(tok, "Where is the lesion?", [(body(a1), organs), (body(a2), [])], 256, 4,
                            end_of_answer_id=gen.end_of_answer_id)
    assert len(seq) == gen.decoder.context_tokens
    # the model's embedding (the trainer's path) gives what the generator's scatter over text gives
    with torch.no_grad():
        ours = model.embed_inputs(seq.input_ids[None], g, torch.cat([o5, o7]))
        plain = ModelRoundGenerator(model.llm, tok, model.embed_text)._scatter_over_text(
            seq.input_ids[None], g, torch.cat([o5, o7]))
    assert torch.equal(ours, plain)
    with torch.no_grad():
        logits = model.llm(inputs_embeds=ours, position_ids=seq.position_ids[None]).logits[0]
    predicted = logits.argmax(-1)
    answer_pos = torch.nonzero(seq.labels_mask).flatten()
    # every decoded id (a cut answer's appended end-of-answer id was not decoded, so not checked)
    n1 = len(body(a1)) + 1
    r1_pos, r2_pos = answer_pos[:len(a1.ids)], answer_pos[n1:n1 + len(a2.ids)]
    assert predicted[r1_pos - 1].tolist() == a1.ids and predicted[r2_pos - 1].tolist() == a2.ids
    assert len(answer_pos) == n1 + len(body(a2)) + 1
