"""IIR decoding benchmark: round latency with prefix-cache reuse vs recomputing the prompt each
round, where a round's time goes, decode speed against the memory-bandwidth bound, encoder cost,
and what makes a 3-4B model usable on a CPU.

    python benchmarks/bench_iir.py                     # the paper-like default scenario, CPU, fp32
    python benchmarks/bench_iir.py --new-tokens 8 40 96               # sweep over answer lengths
    python benchmarks/bench_iir.py --size 3b --device cuda --dtype bfloat16   # on a GPU machine
    python benchmarks/bench_iir.py --skip-cache --no-encoder --cpu-variants   # 3-4B on CPU: bf16 / int8, threads

Default scenario (paper-like, section 3.2 / appendix 10): a 3-round IIR run where round 1 sees
Lg=256 global tokens + a ~40-token question, round 2 adds the attention sentence + 2 organs x
Ll=64 tokens, round 3 the attention sentence + 1 organ x 64 tokens, and every round answers 40
tokens (the cohort's answers are 28-97 words). Greedy, ``ignore_eos`` so both modes decode the
same number of tokens. Each repeat runs it twice in the same process:
  shared     one KV cache for the run, each round prefills only its new segment (the product);
  per_round  each round re-prefills the whole context from scratch (the baseline).
Every repeat asserts both modes produced identical tokens. Printed (median over ``--repeats``):
whole-run ratio, prefill-only ratio, decode tokens/s of both modes, then the M3D-size encoder's
cost per case and the cost of a second question on the same case (answered from the pipeline's
encoding cache), and the machine. Weights are random (no downloads): timing depends on shapes.

Round latency (what the user waits for): time to first token (TTFT) of rounds 2 and 3 in both
modes and their ratio (goal >= 4x with reuse), each round's total, the whole run, and a prefill
sweep: a shared round's prefill of n new tokens on top of the run's context, n = 1 .. 256, fitted
as a + b * n; ``a`` is the fixed per-round cost, compared with one decode step (one pass over the
weights). ``--sweep-threads 1 2`` repeats the sweep per thread count: on a box whose cores are busy
with other jobs, every OpenMP parallel region of a forward waits for a descheduled thread, a fixed
cost per forward whatever n is (that made a 152-token round cost about what a 79-token one did).

Decode speed is compared with the memory-bandwidth bound: a decode step reads every weight matrix
(and the KV cache) once, so tokens/s <= bandwidth / bytes read per token; the bandwidth is measured
in the same run (a sum over a 256 MiB buffer, best of 5). The paper's IIR latency is +2.51 s per
sample (section 4, with its segmentation, GPU); the per-round latency here is on this machine.

``--cpu-variants``: a random Phi-3-mini-width model (the M3D-LaMed-Phi-3-4B LLM: 3072 wide, 8192
MLP, 32 heads, vocab 32064) decoded in fp32, bf16 and int8 (torch's dynamic quantization: int8
Linear weights, fbgemm; deprecated in torch 2.13 for torchao, which is not installed here) at 1 and 2
threads: tokens/s and weight memory. Built with two layer counts of its 32 (``--cpu-layers``,
default 1 and 3, what fits beside other jobs), then extrapolated to 32 layers; it says so.

Threads: on CPU ``--threads 0`` (default) picks cores minus the current 1-min load average (at
least 1): decode is a chain of small matmuls, and OpenMP threads that wait on cores busy with
other jobs made one token 5x slower on a shared 2-core box (2-3 vs 12-17 tokens/s).
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM  # noqa: E402

from inference.iir.decoding import SamplingConfig  # noqa: E402
from inference.iir.generator import ModelRoundGenerator  # noqa: E402
from inference.iir.prompts import OrganRef, followup_segments, load_template, round1_segments  # noqa: E402
from transformers import DynamicCache  # noqa: E402

SIZES = {
    # name: hidden, layers, heads, kv heads, intermediate, vocab, tie embeddings
    "tiny": (128, 2, 4, 2, 256, 1000, False),
    "small": (768, 12, 12, 2, 2048, 32000, False),
    "3b": (2048, 36, 16, 2, 11008, 151936, True),  # Qwen2.5-3B
}
ORGANS = [OrganRef(7, "pancreas", 7), OrganRef(5, "liver", 5), OrganRef(1, "spleen", 1),
          OrganRef(6, "stomach", 6), OrganRef(19, "duodenum", 19), OrganRef(20, "colon", 20)]


def bench_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["The question requires greater attention to pancreas. Answer:",
              "Where is the lesion located in the pancreas? Identify its sub-region.",
              "The liver, spleen, stomach, duodenum and colon. Thus, the answer is T3N0M0."] * 20
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<|endoftext|>", "<ct>", "<organ_feature>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                   additional_special_tokens=["<ct>", "<organ_feature>"])


def random_llm(size: str, device: str, dtype: torch.dtype, vocab: int | None = None) -> Qwen2ForCausalLM:
    hidden, layers, heads, kv, inter, v, tie = SIZES[size]
    cfg = Qwen2Config(vocab_size=vocab or v, hidden_size=hidden, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv, intermediate_size=inter,
                      max_position_embeddings=32768, tie_word_embeddings=tie)
    torch.manual_seed(0)
    with torch.device(device):
        llm = Qwen2ForCausalLM(cfg)
    return llm.to(dtype).eval()


# ~40 tokens with the benchmark tokenizer (a real Qwen tokenizer gives about as many for ~30 words)
QUESTION = ("Where is the lesion located in the pancreas? Identify its sub-region. "
            "Is the liver, spleen, stomach, duodenum or colon involved?")


def run_iir(llm, tok, mode: str, args, new_tokens: int, k: int, device: str):
    """One IIR run (round 1: Lg + question; round r > 1: ``args.organs[r - 2]`` organs x Ll).

    Returns the round Generations and the wall time in ms."""
    lg, ll = args.lg, args.ll
    gen = ModelRoundGenerator(llm, tok, llm.get_input_embeddings(), cache_mode=mode,
                              sampling=SamplingConfig(max_new_tokens=new_tokens, ignore_eos=True))
    tpl = load_template()
    g = torch.Generator(device="cpu").manual_seed(1)
    dtype = llm.get_input_embeddings().weight.dtype

    def vis(n):
        return (torch.randn(1, n, k, generator=g) * 0.02).to(device=device, dtype=dtype)

    plan = [(round1_segments(tpl, QUESTION, lg), [vis(lg)])]
    used = 0
    for n_org in args.organs:
        organs = ORGANS[used:used + n_org]
        used += n_org
        plan.append((followup_segments(tpl, organs, ll), [vis(ll) for _ in organs]))
    _sync(device)
    t0 = time.perf_counter()
    out = [gen.generate(segs, visuals) for segs, visuals in plan]
    _sync(device)
    return out, (time.perf_counter() - t0) * 1000.0


def _decode_tps(gens) -> float:
    """Decode steps per second over a run (the first token of a round comes from its prefill)."""
    steps = sum(max(g.new_tokens - 1, 0) for g in gens)
    ms = sum(g.decode_ms for g in gens)
    return steps / (ms / 1000.0) if ms > 0 else 0.0


def bench_cache(args) -> None:
    device, dtype = args.device, getattr(torch, args.dtype)
    tok = bench_tokenizer()
    llm = random_llm(args.size, device, dtype)
    k = llm.config.hidden_size
    n_params = sum(p.numel() for p in llm.parameters())
    q_tokens = len(tok(QUESTION)["input_ids"])
    print(f"LLM: random Qwen2 '{args.size}' ({n_params / 1e6:.0f} M params), {args.dtype} on {device}")
    print(f"IIR run: {1 + len(args.organs)} rounds; round 1: Lg={args.lg} global tokens + a {q_tokens}-token "
          f"question; later rounds: attention sentence + {'/'.join(map(str, args.organs))} organ(s) x "
          f"Ll={args.ll} tokens; greedy; {args.repeats} repeats, medians")
    run_iir(llm, tok, "shared", args, 4, k, device)  # warm-up (allocator, kernels)
    modes = ("per_round", "shared")
    summary = []
    per_round: dict[int, dict[str, list[tuple[float, float]]]] = {}
    for n_new in args.new_tokens:
        wall = {m: [] for m in modes}
        prefill = {m: [] for m in modes}
        tps = {m: [] for m in modes}
        last = {}
        runs = {m: [] for m in modes}
        for rep in range(args.repeats):
            for mode in (modes if rep % 2 == 0 else modes[::-1]):  # alternate order: no mode always goes first
                gens, ms = run_iir(llm, tok, mode, args, n_new, k, device)
                wall[mode].append(ms)
                prefill[mode].append(sum(g.prefill_ms for g in gens))
                tps[mode].append(_decode_tps(gens))
                last[mode] = gens
                runs[mode].append(gens)
            ids = {m: [g.ids for g in last[m]] for m in modes}
            if ids["shared"] != ids["per_round"]:
                raise SystemExit(f"tokens differ between cache modes ({n_new} new tokens, repeat {rep + 1}): "
                                 "the timings would compare different work")
        print(f"\n{n_new} new tokens per round; identical tokens in both modes: yes (asserted every repeat)")
        print(f"{'round':>5} | {'mode':>9} | {'prefilled':>9} | {'prefill ms':>10} | {'decode ms':>9} | {'tok/s':>7}"
              "   (last repeat)")
        for mode in modes:
            for i, g in enumerate(last[mode], 1):
                print(f"{i:>5} | {mode:>9} | {g.prefill_tokens:>9} | {g.prefill_ms:>10.1f} | {g.decode_ms:>9.1f} | "
                      f"{g.tokens_per_s:>7.1f}")
        med = {m: (statistics.median(wall[m]), statistics.median(prefill[m]), statistics.median(tps[m]))
               for m in modes}
        summary.append((n_new, med))
        per_round[n_new] = {m: [(statistics.median(g[r].prefill_ms for g in runs[m]),
                                 statistics.median(g[r].prefill_ms + g[r].decode_ms for g in runs[m]))
                                for r in range(len(runs[m][0]))] for m in modes}
    print(f"\ntime to first token (TTFT) per round = its prefill; median of {args.repeats}; goal: rounds 2 and 3 "
          ">= 4x faster with reuse")
    print(f"{'new tok/round':>13} | {'round':>5} | {'TTFT per_round':>14} | {'TTFT shared':>11} | {'ratio':>6} | "
          f"{'round total per_round':>21} | {'round total shared':>18}")
    for n_new, rows in per_round.items():
        for r, ((ttft_p, tot_p), (ttft_s, tot_s)) in enumerate(zip(rows["per_round"], rows["shared"]), 1):
            print(f"{n_new:>13} | {r:>5} | {ttft_p:>11.0f} ms | {ttft_s:>8.0f} ms | {ttft_p / max(ttft_s, 1e-9):>5.2f}x | "
                  f"{tot_p:>18.0f} ms | {tot_s:>15.0f} ms")
    extra = [sum(t for _, t in rows["shared"][1:]) / max(len(rows["shared"]) - 1, 1) for rows in per_round.values()]
    print(f"per extra round (shared, mean of rounds 2..): {', '.join(f'{e / 1000:.2f} s' for e in extra)} at "
          f"{', '.join(map(str, per_round))} new tokens/round; the paper: +2.51 s per sample for IIR (GPU, with "
          "its segmentation)")
    print(f"\nprefix-cache reuse (shared) vs re-prefilling the whole context each round (per_round); "
          f"median of {args.repeats}")
    print(f"{'new tok/round':>13} | {'per_round ms':>12} | {'shared ms':>9} | {'whole run':>9} | "
          f"{'prefill only':>12} | {'decode tok/s per_round':>22} | {'decode tok/s shared':>19}")
    for n_new, med in summary:
        (pr, ppr, tpr), (sh, psh, tsh) = med["per_round"], med["shared"]
        print(f"{n_new:>13} | {pr:>12.0f} | {sh:>9.0f} | {pr / sh:>8.2f}x | {ppr / max(psh, 1e-9):>11.2f}x | "
              f"{tpr:>22.1f} | {tsh:>19.1f}")
    bw = memory_bandwidth_gbs(device)
    per_token = decode_bytes(llm, context=args.lg + 40 + sum(args.organs) * (args.ll + 12))
    bound = bw * 1e9 / per_token
    best = max(med["shared"][2] for _, med in summary)
    print(f"\ndecode vs the memory-bandwidth bound: {per_token / 1e6:.0f} MB read per token (weight matrices, "
          f"lm_head, KV cache), measured bandwidth {bw:.1f} GB/s -> bound {bound:.1f} tokens/s; measured "
          f"{best:.1f} tokens/s = {best / bound:.0%} of the bound")
    if str(device).startswith("cuda"):
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB ({torch.cuda.get_device_name()})")
    if args.sweep:
        prefill_sweep(llm, args, device, dtype)


def memory_bandwidth_gbs(device: str, mib: int = 256) -> float:
    """Read bandwidth: a sum over a ``mib`` MiB float32 buffer, best of 5 (GB/s)."""
    x = torch.ones(mib * (1 << 20) // 4, device=device)
    best = float("inf")
    for _ in range(5):
        _sync(device)
        t0 = time.perf_counter()
        x.sum()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return x.numel() * 4 / best / 1e9


def decode_bytes(llm, context: int) -> int:
    """Bytes one decode step reads: every Linear weight (lm_head included; the input embedding is one
    row) and the KV cache of ``context`` tokens."""
    weights = sum(m.weight.numel() * m.weight.element_size() for m in llm.modules() if isinstance(m, torch.nn.Linear))
    cfg = llm.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    kv = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * head_dim * context
    return weights + kv * llm.get_input_embeddings().weight.element_size()


def prefill_sweep(llm, args, device: str, dtype) -> None:
    """A shared round's prefill of n new tokens on top of the run's context: ms = a + b * n."""
    k = llm.config.hidden_size
    context = args.lg + 40 + 40 + 2 * (args.ll + 12)  # round 1 + answer + round 2 + answer
    sizes = (1, 16, 64, 79, 152, 256)
    before = torch.get_num_threads()
    print(f"\nprefill sweep: n new tokens on top of a {context}-token cache (one forward, logits of the last "
          f"token), best of {args.repeats}; fit ms = a + b * n")
    for threads in (args.sweep_threads or [before]):
        if not str(device).startswith("cuda"):
            torch.set_num_threads(threads)
        g = torch.Generator(device="cpu").manual_seed(2)
        ctx = (torch.randn(1, context, k, generator=g) * 0.02).to(device=device, dtype=dtype)
        ms = []
        with torch.inference_mode():
            for n in sizes:
                new = (torch.randn(1, n, k, generator=g) * 0.02).to(device=device, dtype=dtype)
                best = float("inf")
                for rep in range(max(args.repeats, 2) + 1):  # the first of each size is a warm-up
                    cache = DynamicCache(config=llm.config)
                    llm(inputs_embeds=ctx, position_ids=torch.arange(context, device=device)[None], cache=cache,
                        use_cache=True, logits_to_keep=1)
                    _sync(device)
                    t0 = time.perf_counter()
                    llm(inputs_embeds=new, position_ids=torch.arange(context, context + n, device=device)[None],
                        cache=cache, use_cache=True, logits_to_keep=1)
                    _sync(device)
                    if rep:
                        best = min(best, (time.perf_counter() - t0) * 1000)
                ms.append(best)
        b, a = np.polyfit(np.asarray(sizes, float), np.asarray(ms), 1)
        row = "  ".join(f"{n}: {t:.0f}" for n, t in zip(sizes, ms))
        print(f"threads {threads}: {row} ms -> a = {a:.0f} ms fixed, b = {b:.2f} ms/token "
              f"(one decode step = the n = 1 row; 1-min load {os.getloadavg()[0]:.1f})")
    if not str(device).startswith("cuda"):
        torch.set_num_threads(before)


PHI3_MINI = dict(hidden_size=3072, intermediate_size=8192, num_attention_heads=32, num_key_value_heads=32,
                 vocab_size=32064, max_position_embeddings=4096)  # M3D-LaMed-Phi-3-4B's LLM (32 layers)


def bench_cpu_variants(args) -> None:
    """Decode ms/token and weight memory of a Phi-3-mini-width model in fp32 / bf16 / int8 on CPU."""
    from transformers import Phi3Config

    full_layers = 32
    lo, hi = min(args.cpu_layers), max(args.cpu_layers)
    print(f"\nCPU: Phi-3-mini width (M3D-LaMed-Phi-3-4B's LLM, 3.8 B params at 32 layers), random weights; built "
          f"with {lo} and {hi} of its 32 layers and extrapolated: t_32 = t_{lo} + (32 - {lo}) * (t_{hi} - t_{lo}) / "
          f"{hi - lo}. A decode step's time is the fastest of {2 * args.cpu_tokens} steps after a 64-token prefill "
          "(the least disturbed by other jobs); weight memory is counted from the tensors (int8: dynamic "
          "quantization, int8 Linear weights, fp32 embedding)")
    rows = []
    for variant in args.cpu_dtypes:
        for threads in args.cpu_threads:
            times, mem = {}, {}
            for n_layers in (lo, hi):
                gc.collect()
                cfg = Phi3Config(num_hidden_layers=n_layers, **PHI3_MINI)
                llm = _random_phi3(cfg, torch.bfloat16 if variant == "bf16" else torch.float32)
                if variant == "int8":
                    llm = torch.ao.quantization.quantize_dynamic(llm, {torch.nn.Linear}, dtype=torch.qint8)
                mem[n_layers] = _weight_bytes(llm, variant)
                torch.set_num_threads(threads)
                times[n_layers] = _decode_ms(llm, cfg, args.cpu_tokens)
                del llm
            per_layer = (times[hi] - times[lo]) / (hi - lo)
            t32 = times[lo] + (full_layers - lo) * max(per_layer, 0.0)
            m32 = mem[lo] + (full_layers - lo) * (mem[hi] - mem[lo]) / (hi - lo)
            rows.append((variant, threads, times[lo], times[hi], t32, m32))
            print(f"  {variant} {threads} thread(s): {times[lo]:.0f} / {times[hi]:.0f} ms per token at {lo} / {hi} layers "
                  f"(1-min load {os.getloadavg()[0]:.1f})", flush=True)
    print(f"{'weights':>7} | {'threads':>7} | {f'{lo} layers':>10} | {f'{hi} layers':>10} | {'32 layers ms/token':>18} | "
          f"{'tokens/s':>8} | {'weights at 32 layers':>20}")
    for variant, threads, t_lo, t_hi, t32, m32 in rows:
        print(f"{variant:>7} | {threads:>7} | {t_lo:>7.0f} ms | {t_hi:>7.0f} ms | {t32:>15.0f} ms | {1000 / t32:>8.2f} | "
              f"{m32 / 2**30:>16.1f} GiB")


def _random_phi3(cfg, dtype):
    from transformers import Phi3ForCausalLM

    torch.manual_seed(0)
    with torch.device("meta"):
        llm = Phi3ForCausalLM(cfg)
    llm = llm.to_empty(device="cpu").to(dtype)
    with torch.no_grad():  # random values without the slow initialisation (timing depends on shapes)
        for p in llm.parameters():
            p.normal_(0.0, 0.02)
    llm.model.rotary_emb = type(llm.model.rotary_emb)(config=cfg)
    return llm.eval()


def _weight_bytes(llm, variant: str) -> int:
    """Bytes of the weights as stored: parameters, plus int8 packed Linear weights after quantization."""
    total = sum(p.numel() * p.element_size() for p in llm.parameters())
    if variant == "int8":
        for m in llm.modules():
            if isinstance(m, torch.ao.nn.quantized.dynamic.Linear):
                w, b = m.weight(), m.bias()
                total += w.numel() + (0 if b is None else b.numel() * 4)
    return total


def _decode_ms(llm, cfg, steps: int) -> float:
    """The fastest decode step (ms) over 2 x ``steps`` steps after a 64-token prefill."""
    best = float("inf")
    with torch.inference_mode():
        for _ in range(2):
            cache = DynamicCache(config=cfg)
            ids = torch.randint(0, cfg.vocab_size, (1, 64))
            out = llm(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
            tok = out.logits[:, -1:].argmax(-1)
            for i in range(steps):
                t0 = time.perf_counter()
                out = llm(input_ids=tok, position_ids=torch.tensor([[64 + i]]), cache=cache, use_cache=True)
                tok = out.logits[:, -1:].argmax(-1)
                best = min(best, (time.perf_counter() - t0) * 1000)
    return best


def bench_encoder(args) -> None:
    """M3D-size encoder once per case; the pipeline's cache answers a second question without it."""
    from inference.ct_volume import CTVolume
    from inference.iir.loop import IIRSettings
    from inference.model.config import TumorChainConfig
    from inference.model.modeling_tumorchain import TumorChainModel
    from inference.pipeline import Pipeline
    from inference.segmentation.organ_masks import OrganMasks

    device = args.device
    tok = bench_tokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        random_llm("tiny", "cpu", torch.float32, vocab=len(tok)).save_pretrained(base)
        tok.save_pretrained(base)
        model = TumorChainModel.build(base, TumorChainConfig(), device=device, dtype=args.dtype)
        counts = model.parameter_counts()
        print(f"\nencoder: M3D-size 3D ViT ({counts['vision_encoder'] / 1e6:.0f} M params) + projector, "
              f"{args.dtype} on {device}")
        vol = torch.rand(1, 1, 32, 256, 256)
        with torch.inference_mode():
            model.encode_case(vol)  # warm-up
            ts = []
            for _ in range(args.repeats):
                _sync(device)
                t0 = time.perf_counter()
                enc = model.encode_case(vol)
                model.global_tokens(enc)
                _sync(device)
                ts.append((time.perf_counter() - t0) * 1000)
            mask = torch.zeros(32, 256, 256, dtype=torch.bool)
            mask[8:20, 90:170, 100:180] = True
            t0 = time.perf_counter()
            model.organ_tokens(enc, mask)
            organ_ms = (time.perf_counter() - t0) * 1000
        print(f"encode_case + global tokens: {statistics.median(ts):.0f} ms per case (median of {args.repeats}); "
              f"one organ's tokens from it: {organ_ms:.1f} ms")
        model.save_pretrained(Path(tmp) / "model")
        ct, masks = _synthetic_case(CTVolume, OrganMasks)
        pipe = Pipeline(model, Path(tmp) / "model", IIRSettings(max_rounds=2, sampling=SamplingConfig(max_new_tokens=4)))
        first = pipe.analyze_volume(ct, masks, "Is the pancreas normal?")
        second = pipe.analyze_volume(ct, masks, "Is the liver normal?")
        print(f"pipeline, same case twice: encode {first.timings['encode_ms']:.0f} ms then "
              f"{second.timings['encode_ms']:.2f} ms (cached); preprocess {first.timings['preprocess_ms']:.0f} ms "
              f"then {second.timings['preprocess_ms']:.2f} ms")


def _synthetic_case(CTVolume, OrganMasks):
    shape = (128, 128, 40)
    hu = np.full(shape, -1000, np.int16)
    hu[10:118, 14:114, :] = 40
    organs = np.zeros(shape, np.uint8)
    organs[30:70, 30:70, 10:30] = 5
    organs[70:90, 60:80, 15:25] = 7
    affine = np.diag([3.0, 3.0, 5.0, 1.0])
    ct = CTVolume(hu=hu, affine=affine, source_path=Path("synthetic_case.nii.gz"))
    return ct, OrganMasks(organs=organs, affine=affine, backend="synthetic")


def machine_line(args) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    dev = torch.cuda.get_device_name() if str(args.device).startswith("cuda") else (platform.processor() or platform.machine())
    return (f"machine: {dev}; {os.cpu_count()} CPU cores, 1-min load {load:.1f} at start; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads; python {platform.python_version()}")


def pick_threads(requested: int) -> int:
    """0 = cores not busy with other jobs right now (at least 1, at most torch's default)."""
    if requested > 0:
        return requested
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) - int(round(load))))


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=tuple(SIZES), default="small")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--organs", type=int, nargs="+", default=[2, 1],
                   help="organs examined in each later round (one number per round; default 2 1 = 3 rounds)")
    p.add_argument("--lg", type=int, default=256, help="global tokens (M3D: 256)")
    p.add_argument("--ll", type=int, default=64, help="tokens per organ (default config: 64)")
    p.add_argument("--new-tokens", type=int, nargs="+", default=[40],
                   help="generated tokens per round (several: a sweep over answer lengths)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = free cores, see above)")
    p.add_argument("--no-encoder", action="store_true", help="skip the encoder part")
    p.add_argument("--no-sweep", dest="sweep", action="store_false", help="skip the prefill sweep")
    p.add_argument("--sweep-threads", type=int, nargs="+", help="thread counts for the prefill sweep (default: the run's)")
    p.add_argument("--cpu-variants", action="store_true", help="Phi-3-mini-width decode on CPU: fp32 / bf16 / int8")
    p.add_argument("--cpu-layers", type=int, nargs=2, default=[1, 3], help="the two layer counts built (see above)")
    p.add_argument("--cpu-dtypes", nargs="+", default=["fp32", "bf16", "int8"], choices=("fp32", "bf16", "int8"))
    p.add_argument("--cpu-threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--cpu-tokens", type=int, default=12, help="decode steps timed per variant and repeat")
    p.add_argument("--skip-cache", action="store_true", help="skip the decoding part")
    args = p.parse_args()
    if not str(args.device).startswith("cuda"):
        torch.set_num_threads(pick_threads(args.threads))
    print(machine_line(args))
    if not args.skip_cache:
        bench_cache(args)
    if not args.no_encoder:
        bench_encoder(args)
    if args.cpu_variants:
        bench_cpu_variants(args)


if __name__ == "__main__":
    main()
