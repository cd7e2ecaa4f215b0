"""The LLM findings extractor: any OpenAI-compatible chat endpoint the site runs itself (vLLM, llama.cpp
server, ``transformers serve``), asked for JSON in a fixed schema (FINDINGS_SCHEMA, sent as
``response_format``; servers that ignore it still get the schema in the prompt).

Never contacted unless ``--extractor llm --llm-url URL`` is given. The rule extractor always runs too:
- a reply that is not JSON of the schema's shape is asked for once more (with the problem named);
  a second bad reply, or an endpoint that fails, gives the rule result for the whole case;
- every field of a valid reply is checked (organ a label, sub-region one of that organ's, size
  1-400 mm, values of the knowledge graph's vocabularies, stages of the right axis); a field that
  fails takes the rule extractor's value for the same lesion (same organ and kind, in order).
``sources`` records "llm" or "rules" per field, and ``sources["extractor"]`` the case's outcome.
Standard library only (urllib), like training/judge.py.
"""
from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass

from inference.errors import InputError
from inference.labels import merged_labels

from ..cohort.knowledge import BOUNDARIES, SHAPES, KnowledgeGraph, load_kg
from .findings import CaseFindings, Lesion, Node
from .rule_extractor import ReportInput, RuleExtractor

DENSITIES = ("hypodense", "isodense", "hyperdense", "mixed")
LESION_KEYS = ("organ", "sub_region", "size_mm", "count", "shape", "boundary", "density", "others",
               "vessel_invasion", "kind", "hedged")


def findings_schema(kg: KnowledgeGraph) -> dict:
    table = merged_labels()
    nullable = lambda t, **kw: {"type": [t, "null"], **kw}  # noqa: E731
    lesion = {"type": "object", "additionalProperties": False, "required": list(LESION_KEYS), "properties": {
        "organ": {"type": "string", "enum": [lab.name for lab in table.organs()]},
        "sub_region": nullable("string", enum=[lab.name for lab in table.substructures()] + [None]),
        "size_mm": nullable("number"), "count": nullable("integer"),
        "shape": nullable("string", enum=list(SHAPES) + [None]),
        "boundary": nullable("string", enum=list(BOUNDARIES) + [None]),
        "density": nullable("string", enum=list(DENSITIES) + [None]),
        "others": {"type": "array", "items": {"type": "string", "enum": list(kg.attributes["others"])}},
        "vessel_invasion": nullable("boolean"), "kind": {"type": "string", "enum": ["primary", "metastasis"]},
        "hedged": {"type": "boolean"}}}
    stage = {"type": "object", "properties": {a: nullable("string") for a in "TNM"}, "required": list("TNM")}
    return {"type": "object", "additionalProperties": False,
            "required": ["lesions", "lymph_nodes", "distant_metastasis_stated", "normal_organs", "pathology", "stage"],
            "properties": {
                "lesions": {"type": "array", "items": lesion},
                "lymph_nodes": {"type": "object", "required": ["stated", "positive_count", "largest_short_axis_mm"],
                                "properties": {"stated": {"type": "boolean"}, "positive_count": nullable("integer"),
                                               "largest_short_axis_mm": nullable("number")}},
                "distant_metastasis_stated": {"type": "boolean"},
                "normal_organs": {"type": "array", "items": {"type": "string"}},
                "pathology": nullable("string", enum=list(kg.pathologies) + [None]),
                "stage": stage}}


SYSTEM = ("You extract structured findings from abdominal CT reports. Reply with one JSON object that follows "
          "this JSON schema exactly, and nothing else. Use only facts the report states: a value the report does "
          "not give is null (an empty list for 'others'). One entry in 'lesions' per described lesion; 'count' is "
          "the number of lesions the entry stands for. A lesion that is only hedged ('cannot exclude', 'possible') "
          "has hedged=true. Negated findings ('no focal lesion') are not lesions; the organs they concern go in "
          "'normal_organs'. Sizes in millimetres (long axis). Schema:\n")


class ExtractorReplyError(ValueError):
    """The endpoint's reply is not findings JSON of the schema's shape."""


@dataclass
class LLMSettings:
    url: str
    model: str = "extractor"
    api_key_env: str | None = "TUMORCHAIN_LLM_API_KEY"
    timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if not re.match(r"^https?://", self.url or ""):
            raise InputError(None, f"--llm-url must start with http:// or https://, got {self.url!r}")
        self.url = self.url.rstrip("/")


class LLMExtractor:
    name = "llm"

    def __init__(self, settings: LLMSettings, kg: KnowledgeGraph | None = None):
        self.settings = settings
        self.kg = kg or load_kg()
        self.rules = RuleExtractor(self.kg)
        self.schema = findings_schema(self.kg)

    # -- the endpoint -----------------------------------------------------------------------------
    def _chat(self, messages: list[dict]) -> str:
        s = self.settings
        body = {"model": s.model, "temperature": 0.0, "max_tokens": 2048, "messages": messages,
                "response_format": {"type": "json_schema", "json_schema": {"name": "findings", "schema": self.schema}}}
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(s.api_key_env) if s.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(f"{s.url}/chat/completions", data=json.dumps(body).encode(), headers=headers,
                                     method="POST")
        with urllib.request.urlopen(req, timeout=s.timeout_s) as resp:
            data = json.loads(resp.read().decode("utf-8"))
        return str(data["choices"][0]["message"]["content"])

    def ask(self, report: str) -> dict:
        """The reply as a dict of the schema's shape; one retry naming the problem; ExtractorReplyError."""
        messages = [{"role": "system", "content": SYSTEM + json.dumps(self.schema)},
                    {"role": "user", "content": report}]
        problem = ""
        for attempt in range(2):
            content = self._chat(messages)
            try:
                return _shape(_parse(content))
            except ExtractorReplyError as exc:
                problem = str(exc)
                messages = messages + [{"role": "assistant", "content": content},
                                       {"role": "user", "content": f"That reply is not valid: {problem}. Reply with "
                                                                   "the JSON object only, following the schema."}]
        raise ExtractorReplyError(f"two invalid replies; last: {problem}")

    # -- the extractor ----------------------------------------------------------------------------
    def extract(self, case_id: str, inp: ReportInput) -> CaseFindings:
        rules = self.rules.extract(case_id, inp)
        text = "\n".join(x for x in (inp.report, inp.impression and f"Impression: {inp.impression}",
                                     inp.pathology and f"Pathology: {inp.pathology}") if x)
        try:
            reply = self.ask(text)
        except (ExtractorReplyError, urllib.error.URLError, TimeoutError, OSError, json.JSONDecodeError, KeyError,
                IndexError, TypeError) as exc:
            rules.sources["extractor"] = f"rules (LLM failed: {exc})"
            return rules
        f = self._findings(case_id, inp, reply, rules)
        f.sources["extractor"] = "llm"
        return f

    def _findings(self, case_id: str, inp: ReportInput, reply: dict, rules: CaseFindings) -> CaseFindings:
        f = CaseFindings(case_id=case_id, impression=rules.impression, pathology_text=rules.pathology_text)
        f.dropped = [d for d in rules.dropped if d.reason == "negated mention"]
        pool = [les for les in rules.lesions + rules.metastases + rules.incidental
                if les.evidence != "(counted, not described)"]
        described: list[Lesion] = []
        for item in reply["lesions"]:
            les = self._lesion(item, pool, f)
            if les is not None:
                described.append(les)
        nodes = reply["lymph_nodes"]
        f.nodes_stated = nodes.get("stated") is True or rules.nodes_stated
        n = nodes.get("positive_count")
        size = nodes.get("largest_short_axis_mm")
        size = size if _number(size, 1, 100) else None
        if _number(n, 0, 60):
            f.nodes = [Node(size if k == 0 else None, "llm") for k in range(int(n))]
            f.sources["nodes"] = "llm"
        else:
            f.nodes, f.sources["nodes"] = list(rules.nodes), "rules"
        f.metastases_stated = reply["distant_metastasis_stated"] is True or rules.metastases_stated
        table = merged_labels()
        f.normal_organs = [o for o in reply["normal_organs"] if isinstance(o, str) and o in table] or rules.normal_organs
        path = reply.get("pathology")
        path_source = "llm"
        if path not in self.kg.pathologies:
            path, path_source = rules.pathology, rules.sources.get("pathology", "rules")
        self.rules.assemble(f, described, inp.report, pathology=(path, path_source))
        stage = {a: v for a, v in (reply.get("stage") or {}).items()
                 if a in "TNM" and isinstance(v, str) and re.fullmatch(rf"{a}(?:[0-4][a-d]?|is)", v.strip())}
        if stage:
            f.stated_stage, f.sources["stage"] = {a: v.strip() for a, v in stage.items()}, "llm"
        else:
            f.stated_stage = rules.stated_stage
        return f

    def _lesion(self, item: dict, pool: list[Lesion], f: CaseFindings) -> Lesion | None:
        table = merged_labels()
        kind = item.get("kind") if item.get("kind") in ("primary", "metastasis") else "primary"
        organ = item.get("organ") if isinstance(item.get("organ"), str) and item.get("organ") in table and \
            table.by_name(item["organ"]).parent is None else None
        match = next((r for r in pool if r.organ == organ and r.kind == kind), None) if organ else None
        if organ is None:
            match = pool[0] if pool else None
            if match is None:
                f.drop("an LLM lesion", "invalid organ and no rule-extracted lesion to fall back on")
                return None
        if match is not None:
            pool.remove(match)
        if item.get("hedged") is True:
            f.drop(f"lesion in the {organ or match.organ}", "hedged mention (uncertain)")
            return None
        sub = item.get("sub_region")
        checks = {
            "organ": (organ, organ is not None),
            "substructure": (sub, sub is None or (isinstance(sub, str) and sub in table and organ is not None
                                                  and table.by_name(sub).parent == table.by_name(organ).id)),
            "diameter_mm": (item.get("size_mm"), item.get("size_mm") is None or _number(item.get("size_mm"), 1, 400)),
            "shape": (item.get("shape"), item.get("shape") in (None, *SHAPES)),
            "boundary": (item.get("boundary"), item.get("boundary") in (None, *BOUNDARIES)),
            "density": (item.get("density"), item.get("density") in (None, *DENSITIES)),
            "others": (item.get("others"), isinstance(item.get("others"), list) and
                       all(o in self.kg.attributes["others"] for o in item["others"])),
            "vessel_invasion": (item.get("vessel_invasion"), item.get("vessel_invasion") in (None, True, False)),
        }
        les = Lesion(organ=None, kind=kind, evidence="llm")
        for name, (value, ok) in checks.items():
            if ok:
                setattr(les, name, list(value) if name == "others" else value)
                if value not in (None, []):
                    les.sources[name] = "llm"
            elif match is not None:
                setattr(les, name, getattr(match, name))
                if getattr(match, name) not in (None, []):
                    les.sources[name] = "rules"
                f.drop(f"LLM field {name}={value!r}", "invalid; the rule extractor's value is used")
        if les.diameter_mm is not None:
            les.diameter_mm = float(les.diameter_mm)
        count = item.get("count")
        les.stated_count = int(count) if _number(count, 1, 50) else None
        return les


def _number(value, lo: float, hi: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and lo <= value <= hi


def _parse(content: str) -> dict:
    text = content.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    if fence:
        text = fence.group(1)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExtractorReplyError(f"not JSON ({exc.msg} at {exc.pos})") from None
    if not isinstance(data, dict):
        raise ExtractorReplyError("not a JSON object")
    return data


def _shape(data: dict) -> dict:
    """The reply's top level must have the schema's containers; fields inside are checked one by one later."""
    if not isinstance(data.get("lesions"), list) or not all(isinstance(x, dict) for x in data["lesions"]):
        raise ExtractorReplyError("'lesions' must be a list of objects")
    if not isinstance(data.get("lymph_nodes"), dict):
        raise ExtractorReplyError("'lymph_nodes' must be an object")
    data.setdefault("distant_metastasis_stated", False)
    data.setdefault("normal_organs", [])
    data.setdefault("pathology", None)
    data.setdefault("stage", {})
    if not isinstance(data["normal_organs"], list) or not isinstance(data["stage"], dict):
        raise ExtractorReplyError("'normal_organs' must be a list and 'stage' an object")
    return data
