"""Our own decoding loop over a Hugging Face causal LM with one KV cache for a whole IIR run.

The rounds share their prefix (accumulating form of eq. 7), so round r + 1 only prefills what is
new: the last sampled token of round r (never fed yet), then the attention text and organ tokens.
Everything earlier, including round r's answer, is already in the cache from decoding it.

Cache modes (``cache_mode``):
  "shared"     one cache for the run (the product's mode);
  "per_round"  a fresh cache each round that re-prefills the whole context (the baseline the
               benchmark compares with);
  "none"       no cache at all: every token re-runs the full sequence (the reference the tests
               compare the other two with).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from transformers import DynamicCache

from inference.errors import ModelError, raise_if_cancelled

from .detokenize import IncrementalDetokenizer
from inference.vocabulary import CACHE_MODES, DEFAULT_MAX_NEW_TOKENS



@dataclass(frozen=True)
class SamplingConfig:
    """temperature 0 = greedy. top_k 0 / top_p 1 = no truncation. ``seed`` seeds the run's
    torch.Generator once, so a sampled run repeats exactly. ``ignore_eos`` (benchmarks only)
    always decodes ``max_new_tokens``."""

    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0
    ignore_eos: bool = False

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError("top_p must be in (0, 1]")
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0")


@dataclass
class Generation:
    """One round's decoding. ``ids`` include the stop id when the round ended on one."""

    ids: list[int]
    text: str
    stop_reason: str  # "eos" | "max_new_tokens"
    prefill_tokens: int  # tokens run through the model before the first new token
    prefill_ms: float
    decode_ms: float
    context_tokens: int  # tokens in the context after this round (the last one still pending)
    deltas: list[str] = field(default_factory=list, repr=False)

    @property
    def new_tokens(self) -> int:
        return len(self.ids)

    @property
    def tokens_per_s(self) -> float:
        # the first token comes from the prefill's logits; the rest each cost one decode step
        steps = max(len(self.ids) - 1, 0)
        return steps / (self.decode_ms / 1000.0) if self.decode_ms > 0 and steps else 0.0


def sample_token(logits: torch.Tensor, cfg: SamplingConfig, generator: torch.Generator | None) -> int:
    """logits [V] -> one token id: greedy, or temperature + top-k + top-p with ``generator``."""
    if cfg.temperature <= 0:
        return int(torch.argmax(logits))
    scores = logits.float() / cfg.temperature
    if cfg.top_k > 0 and cfg.top_k < scores.shape[-1]:
        kth = torch.topk(scores, cfg.top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if cfg.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=True)
        probs = torch.softmax(sorted_scores, dim=-1)
        # drop a token when the tokens before it already cover top_p (the top token always stays)
        drop = (torch.cumsum(probs, dim=-1) - probs) > cfg.top_p
        sorted_scores = sorted_scores.masked_fill(drop, float("-inf"))
        scores = torch.full_like(scores, float("-inf")).scatter(0, order, sorted_scores)
    probs = torch.softmax(scores, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


class KVDecoder:
    """Decodes round after round of one IIR run over ``llm``.

    llm:        a HF causal LM taking ``inputs_embeds``, ``position_ids``, ``cache`` (transformers 5's name).
    embed_text: ids [1, t] -> [1, t, K] (the LLM's input embedding).
    stop_ids:   ids that end an answer; ``end_of_answer_id`` is appended to an answer cut by
                ``max_new_tokens`` so the next round sees the same shape of context as in training.
    position_ids: (start, length) -> position ids for the LLM (TumorChainModel.position_ids gives
                (3, 1, T) for M-RoPE LLMs); default (1, T) = start..start+length-1.
    """

    def __init__(
        self,
        llm,
        embed_text: Callable[[torch.Tensor], torch.Tensor],
        tokenizer,
        *,
        stop_ids: Iterable[int],
        end_of_answer_id: int | None = None,
        sampling: SamplingConfig = SamplingConfig(),
        cache_mode: str = "shared",
        prefill_chunk: int = 512,
        position_ids: Callable[[int, int], torch.Tensor] | None = None,
    ):
        if cache_mode not in CACHE_MODES:
            raise ValueError(f"cache_mode must be one of {CACHE_MODES}, got {cache_mode!r}")
        self.llm = llm
        self.embed_text = embed_text
        self.tokenizer = tokenizer
        self.stop_ids = frozenset(int(i) for i in stop_ids)
        self.end_of_answer_id = end_of_answer_id
        self.sampling = sampling
        self.cache_mode = cache_mode
        self.prefill_chunk = max(int(prefill_chunk), 1)
        self.position_ids = position_ids
        self.device = next(llm.parameters()).device
        # looked up once: get_input_embeddings() walks the module tree, once per token otherwise
        self._emb_dtype = llm.get_input_embeddings().weight.dtype
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(sampling.seed))
        self.forward_calls = 0  # model forwards run so far (tests count them around a cancel)
        self._cache: DynamicCache | None = None
        self._n_past = 0  # tokens whose keys/values are in the cache (= next position id)
        self._pending: list[int] = []  # sampled ids not yet fed to the model
        self._history: list[torch.Tensor] = []  # embeddings of the whole context (non-shared modes)
        self._broken = False

    @property
    def context_tokens(self) -> int:
        """Tokens in the run's context so far, including the pending ones."""
        if self.cache_mode == "shared":
            return self._n_past + len(self._pending)
        return sum(int(h.shape[1]) for h in self._history) + len(self._pending)

    @torch.inference_mode()
    def generate(
        self,
        new_embeds: torch.Tensor,
        on_text: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> Generation:
        """Append ``new_embeds`` [1, T, K] to the context and decode one answer.

        on_text gets each token's text delta (never half a UTF-8 character). ``cancel`` is
        checked before every model forward; once set, Cancelled is raised within one token step
        and this decoder refuses further rounds (its cache holds half an answer).
        """
        if self._broken:
            raise RuntimeError("this decoder was cancelled or failed mid-round; start a new run")
        self._broken = True  # cleared when the round completes
        cfg = self.sampling
        t0 = self._now()
        parts = [self._embed_ids(self._pending)] if self._pending else []
        new = torch.cat(parts + [new_embeds.to(self._dtype())], dim=1) if parts else new_embeds.to(self._dtype())
        self._pending = []
        logits, prefill_tokens = self._prefill(new, cancel)
        t1 = self._now()
        detok = IncrementalDetokenizer(self.tokenizer)
        ids: list[int] = []
        deltas: list[str] = []
        stop_reason = "max_new_tokens"
        while True:
            tok = sample_token(logits, cfg, self.generator)
            ids.append(tok)
            if tok in self.stop_ids and not cfg.ignore_eos:
                stop_reason = "eos"
                break
            delta = detok.push(tok)
            if delta:
                deltas.append(delta)
                if on_text is not None:
                    on_text(delta)
            if len(ids) >= cfg.max_new_tokens:
                break
            _check(cancel)
            logits = self._step(tok)
        tail = detok.flush()
        if tail:
            deltas.append(tail)
            if on_text is not None:
                on_text(tail)
        # the last sampled id is fed with the next round's prefill, never twice
        self._pending = [ids[-1]]
        if stop_reason != "eos" and self.end_of_answer_id is not None and not cfg.ignore_eos:
            self._pending.append(int(self.end_of_answer_id))
        t2 = self._now()
        self._broken = False
        return Generation(
            ids=ids,
            text=detok.text,
            stop_reason=stop_reason,
            prefill_tokens=prefill_tokens,
            prefill_ms=(t1 - t0) * 1000.0,
            decode_ms=(t2 - t1) * 1000.0,
            context_tokens=self.context_tokens,
            deltas=deltas,
        )

    # -- model calls ---------------------------------------------------------------------------

    def _prefill(self, new: torch.Tensor, cancel: threading.Event | None) -> tuple[torch.Tensor, int]:
        """Run the new embeddings (shared) or the whole context (other modes); last logits [V]."""
        if self.cache_mode == "shared":
            if self._cache is None:
                self._cache = DynamicCache(config=self.llm.config)
            seq, start, cache = new, self._n_past, self._cache
        else:
            self._history.append(new)
            seq, start = torch.cat(self._history, dim=1), 0
            cache = DynamicCache(config=self.llm.config) if self.cache_mode == "per_round" else None
            self._cache = cache
        logits = None
        total = int(seq.shape[1])
        # chunks bound activation memory and let a cancel land between them
        chunk = total if cache is None else self.prefill_chunk
        for s in range(0, total, chunk):
            _check(cancel)
            logits = self._forward(seq[:, s:s + chunk], start + s, cache)
        self._n_past = start + total if cache is not None else 0
        return logits, total

    def _step(self, tok: int) -> torch.Tensor:
        emb = self._embed_ids([tok])
        if self.cache_mode == "none":
            self._history.append(emb)
            return self._forward(torch.cat(self._history, dim=1), 0, None)
        if self.cache_mode == "per_round":
            self._history.append(emb)
        logits = self._forward(emb, self._n_past, self._cache)
        self._n_past += 1
        return logits

    def _forward(self, embeds: torch.Tensor, start: int, cache: DynamicCache | None) -> torch.Tensor:
        """embeds [1, t, K] at positions start..start+t-1 -> next-token logits [V] (float32)."""
        n = int(embeds.shape[1])
        if self.position_ids is not None:
            pos = self.position_ids(start, n).to(self.device)
        else:
            pos = torch.arange(start, start + n, device=self.device).unsqueeze(0)
        self.forward_calls += 1
        try:
            out = self.llm(inputs_embeds=embeds, position_ids=pos, cache=cache,
                           use_cache=cache is not None, logits_to_keep=1)
        except torch.OutOfMemoryError as exc:
            raise ModelError(f"out of memory while running the language model on {self.device}: {exc}") from None
        return out.logits[0, -1].float()

    def _embed_ids(self, ids: list[int]) -> torch.Tensor:
        t = torch.tensor([ids], dtype=torch.long, device=self.device)
        return self.embed_text(t).to(self._dtype())

    def _dtype(self) -> torch.dtype:
        return self._emb_dtype

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()


_check = raise_if_cancelled


def default_end_of_answer_id(tokenizer, llm=None) -> int | None:
    """The id that closes every answer in a sequence (training labels it, inference stops on it):
    the tokenizer's eos, else the model's first generation-config eos."""
    if getattr(tokenizer, "eos_token_id", None) is not None:
        return int(tokenizer.eos_token_id)
    stops = default_stop_ids(tokenizer, llm)
    return stops[0] if stops else None


def default_stop_ids(tokenizer, llm=None) -> list[int]:
    """The tokenizer's eos plus the model's generation-config eos ids (an int or a list)."""
    ids = set()
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen = getattr(llm, "generation_config", None) if llm is not None else None
    eos = getattr(gen, "eos_token_id", None)
    if isinstance(eos, int):
        ids.add(eos)
    elif isinstance(eos, (list, tuple)):
        ids.update(int(i) for i in eos)
    return sorted(ids)
