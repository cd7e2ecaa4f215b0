"""IIR decoding benchmark: prefix-cache reuse vs recomputing the prompt each round, encoder cost.

    python benchmarks/bench_iir.py                     # the paper-like default scenario, CPU, fp32
    python benchmarks/bench_iir.py --new-tokens 8 40 96               # sweep over answer lengths
    python benchmarks/bench_iir.py --size 3b --device cuda --dtype bfloat16   # on a GPU machine

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

Threads: on CPU ``--threads 0`` (default) picks cores minus the current 1-min load average (at
least 1): decode is a chain of small matmuls, and OpenMP threads that wait on cores busy with
other jobs made one token 5x slower on a shared 2-core box (2-3 vs 12-17 tokens/s).
"""
from __future__ import annotations

import argparse
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
    for n_new in args.new_tokens:
        wall = {m: [] for m in modes}
        prefill = {m: [] for m in modes}
        tps = {m: [] for m in modes}
        last = {}
        for rep in range(args.repeats):
            for mode in (modes if rep % 2 == 0 else modes[::-1]):  # alternate order: no mode always goes first
                gens, ms = run_iir(llm, tok, mode, args, n_new, k, device)
                wall[mode].append(ms)
                prefill[mode].append(sum(g.prefill_ms for g in gens))
                tps[mode].append(_decode_tps(gens))
                last[mode] = gens
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
    print(f"\nprefix-cache reuse (shared) vs re-prefilling the whole context each round (per_round); "
          f"median of {args.repeats}; goal: whole run >= 1.7x")
    print(f"{'new tok/round':>13} | {'per_round ms':>12} | {'shared ms':>9} | {'whole run':>9} | "
          f"{'prefill only':>12} | {'decode tok/s per_round':>22} | {'decode tok/s shared':>19}")
    for n_new, med in summary:
        (pr, ppr, tpr), (sh, psh, tsh) = med["per_round"], med["shared"]
        print(f"{n_new:>13} | {pr:>12.0f} | {sh:>9.0f} | {pr / sh:>8.2f}x | {ppr / max(psh, 1e-9):>11.2f}x | "
              f"{tpr:>22.1f} | {tsh:>19.1f}")


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
    p.add_argument("--skip-cache", action="store_true", help="skip the decoding part")
    args = p.parse_args()
    if not str(args.device).startswith("cuda"):
        torch.set_num_threads(pick_threads(args.threads))
    print(machine_line(args))
    if not args.skip_cache:
        bench_cache(args)
    if not args.no_encoder:
        bench_encoder(args)


if __name__ == "__main__":
    main()
