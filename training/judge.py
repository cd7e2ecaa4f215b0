"""An LLM judge behind an OpenAI-compatible chat endpoint (a local vLLM, llama.cpp server, ...).

Only used when the user passes ``--judge-url``; nothing here runs otherwise, and tests talk to a
local fake server. Standard library only (urllib): a training node needs no extra package.
"""
from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from inference.errors import InputError

SEMANTIC_PROMPT = (
    "You are a radiology expert grading answers to questions about abdominal CT scans. First identify the "
    "question type and its key clinical focus, then compare the model answer with the reference answer. "
    "The answer is correct if it preserves the essential medical meaning and the main clinical finding of "
    "the reference, regardless of minor differences in wording or reasoning. Reply with JSON only: "
    '{"question_type": "...", "key_focus": "...", "correct": true or false, "reason": "..."}'
)


class JudgeError(RuntimeError):
    """The endpoint failed or answered something unusable."""


@dataclass
class Judge:
    url: str  # base URL, e.g. http://localhost:8000/v1
    model: str = "judge"
    api_key: str | None = None
    timeout_s: float = 120.0
    retries: int = 2
    temperature: float = 0.0

    def __post_init__(self) -> None:
        if not re.match(r"^https?://", self.url):
            raise InputError(None, f"--judge-url must start with http:// or https://, got {self.url!r}")
        self.url = self.url.rstrip("/")

    @classmethod
    def from_args(cls, url: str, model: str, api_key_env: str | None) -> "Judge":
        return cls(url=url, model=model, api_key=os.environ.get(api_key_env) if api_key_env else None)

    def chat(self, system: str, user: str, max_tokens: int = 1024) -> str:
        body = json.dumps({"model": self.model, "temperature": self.temperature, "max_tokens": max_tokens,
                           "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}]})
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(f"{self.url}/chat/completions", data=body.encode(), headers=headers,
                                         method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    data = json.loads(resp.read().decode("utf-8"))
                return str(data["choices"][0]["message"]["content"])
            except (urllib.error.URLError, TimeoutError, OSError, json.JSONDecodeError, KeyError, IndexError) as exc:
                last = exc
                if attempt < self.retries:
                    time.sleep(min(2.0 ** attempt, 10.0))
        raise JudgeError(f"judge at {self.url} failed after {self.retries + 1} tries: {last}")

    def chat_json(self, system: str, user: str, max_tokens: int = 1024) -> dict:
        return parse_json_reply(self.chat(system, user, max_tokens))

    def semantic_match(self, question: str, reference: str, answer: str) -> tuple[bool, str]:
        """The paper's semantic consistency check (appendix 10.2): (correct, the judge's reason)."""
        user = f"Question: {question}\nReference answer: {reference}\nModel answer: {answer}"
        reply = self.chat_json(SEMANTIC_PROMPT, user, max_tokens=300)
        correct = reply.get("correct")
        if isinstance(correct, str):
            correct = correct.strip().lower() in ("true", "yes", "correct", "1")
        if not isinstance(correct, bool):
            raise JudgeError(f"judge reply has no true/false 'correct': {reply}")
        return correct, str(reply.get("reason", ""))


def parse_json_reply(text: str) -> dict:
    """The first JSON object in a reply (code fences and chatter around it are ignored)."""
    text = re.sub(r"```(?:json)?", "", text)
    start = text.find("{")
    while start != -1:
        depth = 0
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    try:
                        value = json.loads(text[start:i + 1])
                    except json.JSONDecodeError:
                        break
                    if isinstance(value, dict):
                        return value
                    break
        start = text.find("{", start + 1)
    raise JudgeError(f"no JSON object in the judge's reply: {text[:200]!r}")
