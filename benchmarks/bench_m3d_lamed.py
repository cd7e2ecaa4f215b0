"""An M3D-LaMed folder end to end: write a random-weight checkpoint shaped as the published one,
convert it (inference.model.convert_lamed), load it, and run the organ-guided IIR loop on a
synthetic case: conversion time and memory, load time, encoder, per-round time to first token,
the organ crop's re-encoding, decode tokens/s, peak memory.

    python benchmarks/bench_m3d_lamed.py                                   # tiny sizes, CPU
    python benchmarks/bench_m3d_lamed.py --size phi3-4b --device cuda --dtype bfloat16   # the published sizes

"phi3-4b" is M3D-LaMed-Phi-3-4B's shape (ViT-B 32x256x256, Phi-3-mini LLM 3072 wide, 32 layers,
vocab 32064; 3.9 B parameters, 7.8 GB in bf16): about 16 GB of disk in a temp folder and as much RAM
while writing. Random weights: the text is noise, the timings depend only on the shapes.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    import psutil
    import torch

    from benchmarks.bench_iir import _synthetic_case, machine_line
    from inference.ct_volume import CTVolume
    from inference.iir.decoding import SamplingConfig
    from inference.iir.loop import IIRSettings
    from inference.model.convert_lamed import convert_lamed
    from inference.pipeline import Pipeline
    from inference.segmentation.organ_masks import OrganMasks
    from tests.m3d_lamed_fixture import PHI3_4B, VIT_HEADS, LamedSizes, write_lamed_folder

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=("tiny", "phi3-4b"), default="tiny")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tmp", default=None, help="folder for the two checkpoints (default: a temp folder)")
    args = p.parse_args()
    print(machine_line(args))
    sizes = PHI3_4B if args.size == "phi3-4b" else LamedSizes()
    heads = 12 if args.size == "phi3-4b" else VIT_HEADS
    proc = psutil.Process()
    with tempfile.TemporaryDirectory(prefix="m3d-lamed-", dir=args.tmp) as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        src = write_lamed_folder(root / "M3D-LaMed-Phi-3-4B", "phi3", sizes=sizes, shards=4)
        t_write = time.perf_counter() - t0
        size_gb = sum(f.stat().st_size for f in src.glob("*.safetensors")) / 1e9
        rss0 = proc.memory_info().rss
        t0 = time.perf_counter()
        report = convert_lamed(src, root / "converted", hints={"num_heads": heads},
                               n_organ_tokens=64 if args.size == "phi3-4b" else 4)
        t_convert = time.perf_counter() - t0
        rss_convert = (proc.memory_info().rss - rss0) / 2**30
        print(f"M3D-LaMed-shaped '{args.size}' checkpoint: {size_gb:.2f} GB in 4 shards (written in {t_write:.0f} s); "
              f"converted in {t_convert:.1f} s, RSS grew {rss_convert:.2f} GiB "
              f"({report.n_tensors['llm']} LLM, {report.n_tensors['vision']} vision, {report.n_tensors['projector']} "
              f"projector tensors; {report.n_tensors['skipped']} SegVol skipped)")
        if str(args.device).startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        settings = IIRSettings(max_rounds=args.rounds, sampling=SamplingConfig(max_new_tokens=args.new_tokens,
                                                                               ignore_eos=True))
        pipe = Pipeline.from_model_dir(root / "converted", settings=settings, device=args.device, dtype=args.dtype)
        t_load = time.perf_counter() - t0
        n_params = sum(v for v in pipe.model.parameter_counts().values())
        print(f"loaded in {t_load:.1f} s: {n_params / 1e9:.2f} B parameters, {args.dtype} on {args.device}")
        ct, masks = _synthetic_case(CTVolume, OrganMasks)
        question = "Is there a lesion in the pancreas or the liver?"
        rec = pipe.analyze_volume(ct, masks, question)
        print(f"preprocess ({rec.model.preprocessing.split(':')[0]}) {rec.timings['preprocess_ms']:.0f} ms, "
              f"encode {rec.timings['encode_ms']:.0f} ms, IIR {rec.timings['iir_ms'] / 1000:.1f} s, "
              f"{len(rec.rounds)} rounds")
        print(f"{'round':>5} | {'organs':>18} | {'crop re-encode':>14} | {'TTFT':>8} | {'prompt tok':>10} | "
              f"{'decode tok/s':>12} | {'round total':>11}")
        for r in rec.rounds:
            t = r.timings
            organs = ", ".join(o.name for o in r.organs) or "-"
            total = t.organ_tokens_ms + t.prefill_ms + t.decode_ms
            print(f"{r.index:>5} | {organs:>18} | {t.organ_tokens_ms:>11.0f} ms | {t.prefill_ms:>5.0f} ms | "
                  f"{t.prompt_tokens:>10} | {t.tokens_per_s:>12.1f} | {total / 1000:>9.2f} s")
        if str(args.device).startswith("cuda"):
            print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB ({torch.cuda.get_device_name()})")
        print(f"peak RSS {psutil.Process().memory_info().rss / 2**30:.1f} GiB; organ probabilities: "
              f"{rec.rounds[-1].organs[0].abnormal_prob if rec.rounds[-1].organs else None} (no classifier)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
