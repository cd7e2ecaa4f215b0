"""The rule-based findings extractor: always available, no model, deterministic.

A report is split into its findings and impression (and pathology) sections, the findings into
sentences (inference/labels/clauses.py) and each sentence into segments, one per described lesion
or node group ("A 2 cm lesion in S7 and a 1.5 cm lesion in S4" -> two). Organs and sub-regions come
from the organ matcher (with its negation scope); sizes, counts and attributes from the
terms in lexicon.py. A segment that refers back ("the mass", "it") adds to the lesion before it
instead of making a new one; if it gives a size that disagrees by more than 20 % the size is
dropped as contradictory. Hedged mentions ("cannot exclude a lesion") and negated ones ("no focal
liver lesion") make no lesion; both are recorded. Pathology comes from the pathology column or
section, else the impression, else it is derived from the findings by the knowledge graph's
patterns (which determine one pathology per organ).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from inference.labels import match_organs, merged_labels
from inference.labels.clauses import clause_map

from ..cohort.knowledge import KnowledgeGraph, load_kg
from . import lexicon as lx
from .findings import CaseFindings, Lesion, Node

_DENSITY, _SHAPE, _BOUNDARY, _OTHERS = (lx.compile_table(t) for t in (lx.DENSITY, lx.SHAPE, lx.BOUNDARY, lx.OTHERS))
_PATHOLOGY = lx.compile_table(lx.PATHOLOGY)
_RX = {name: re.compile(getattr(lx, name), re.IGNORECASE) for name in (
    "VESSEL", "LESION_NOUN", "NODE", "NODE_POSITIVE", "NODE_NEGATIVE", "METASTASIS", "DISTANT_NEGATED", "HEDGE",
    "HEDGE_BEFORE", "NODES_NEGATED", "INTERPRETATION", "AT_LEAST",
    "NEGATION_BEFORE", "NEGATION_AFTER", "CLAUSE_BREAK", "COUNT", "PATHOLOGY_GENERIC")}
_NOUN = re.compile(rf"(?<![\w-])(?:{lx.LESION_NOUN})(?![\w-])", re.IGNORECASE)
_NODE_WORD = re.compile(rf"(?:{lx.NODE})", re.IGNORECASE)
_SECTION = re.compile(r"(?:^|(?<=[\s.]))(?P<name>impression|conclusions?|summary|assessment|opinion|diagnosis|pathology|"
                      r"histology|findings)\s*:", re.IGNORECASE)
_SPLIT = re.compile(r";|\s+(?:and|as\s+well\s+as|plus)\s+(?=(?:a|an|another|one|two|three|four|five|several|multiple|the\s+other|"
                    r"additional|a\s+second)\s)|,\s*(?=(?:and\s+)?(?:a|an|another)\s)|\s+(?:with|and)\s+(?=(?:\w+\s+){0,4}(?:lymph|nodes?\b|"
                    r"lymphadenopathy|adenopathy))|,\s*(?=(?:\w+\s+){0,2}(?:lymph|lymphadenopathy|adenopathy))|"
                    r"\s+and\s+(?=(?:\w+\s+)?metasta)", re.IGNORECASE)
_REFERS = re.compile(r"^\s*(?:it|this|which|the\s+(?:\w+\s+){0,2}(?:lesion|mass|tumou?r|nodule))\b|\b(?:this|the\s+same)\s+"
                     r"(?:lesion|mass|tumou?r)\b|\b(?:it|the\s+(?:\w+\s+){0,2}(?:lesion|mass|tumou?r|nodule))\s+(?:measures|is|"
                     r"demonstrates|shows|extends|abuts|encases|involves|invades)\b", re.IGNORECASE)
_ANOTHER = re.compile(r"\b(?:another|second|additional|other|further|separate|smaller)\b", re.IGNORECASE)
_UP_TO = re.compile(r"\b(?:up\s+to|largest|the\s+largest|measuring\s+up\s+to|max(?:imum|imal)?)\b", re.IGNORECASE)
ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6, "VII": 7, "VIII": 8}
SIZE_TOLERANCE = 0.2  # two sizes of one lesion that differ by more than this are contradictory


@dataclass
class ReportInput:
    """One CSV row's texts: the report (findings, maybe with Impression:/Pathology: sections) and the
    optional impression, pathology and stage columns."""

    report: str
    impression: str = ""
    pathology: str = ""
    stage: str = ""


@dataclass
class _Segment:
    text: str
    start: int  # offset in the findings text


def sections(report: str) -> dict[str, str]:
    """{"findings": ..., "impression": ..., "pathology": ...} from "Impression:"-style headers."""
    out = {"findings": "", "impression": "", "pathology": ""}
    marks = list(_SECTION.finditer(report))
    if not marks:
        out["findings"] = report
        return out
    out["findings"] = report[:marks[0].start()]
    for k, m in enumerate(marks):
        end = marks[k + 1].start() if k + 1 < len(marks) else len(report)
        name = m.group("name").lower()
        key = ("findings" if name == "findings" else "pathology" if name in ("pathology", "histology", "diagnosis")
               else "impression")
        out[key] = (out[key] + " " + report[m.end():end]).strip()
    return out


def negated_at(text: str, start: int, end: int) -> bool:
    """NegEx-like test for a term in one segment: a negation before it with no clause break between,
    or a post-negation ("is not seen") right after it."""
    before = text[:start]
    last = None
    for m in _RX["NEGATION_BEFORE"].finditer(before):
        last = m
    if last is not None and not _RX["CLAUSE_BREAK"].search(before[last.end():]):
        return True
    after = text[end:]
    cut = _RX["CLAUSE_BREAK"].search(after)
    window = after[:cut.start()] if cut else after
    post = _RX["NEGATION_AFTER"].search(window)
    return post is not None and post.start() < 40


def _first_value(table, text: str) -> str | None:
    best = None
    for value, rx in table:
        for m in rx.finditer(text):
            if not negated_at(text, m.start(), m.end()) and (best is None or m.start() < best[1]):
                best = (value, m.start())
                break
    return best[0] if best else None


def attributes(text: str) -> dict:
    """Density, shape, boundary, others and vessel invasion stated (not negated) in ``text``."""
    others = [value for value, rx in _OTHERS
              if any(not negated_at(text, m.start(), m.end()) for m in rx.finditer(text))]
    vessel = None
    for m in _RX["VESSEL"].finditer(text):
        vessel = not negated_at(text, m.start(), m.end())
        if vessel:
            break
    return {"density": _first_value(_DENSITY, text), "shape": _first_value(_SHAPE, text),
            "boundary": _first_value(_BOUNDARY, text), "others": others, "vessel_invasion": vessel}


def sizes_mm(text: str) -> list[tuple[float, bool]]:
    """Long axes in mm of the sizes in ``text`` (a size needs a unit), with a flag for short-axis sizes; a
    prior study's size ("previously 2.1 cm", "from 19 mm") is left out."""
    out = []
    for m in lx.SIZE.finditer(text):
        units = [m.group(u) for u in ("ua", "ub", "uc")]
        if not any(units) or lx.PRIOR_SIZE.search(text[max(0, m.start() - 30):m.start()]):
            continue
        vals, unit = [], None
        for g, u in zip(("c", "b", "a"), reversed(units)):  # a number without a unit takes the next one's
            unit = (u or unit)
            if m.group(g) is not None:
                vals.append(float(m.group(g).replace(",", ".")) * (10.0 if (unit or "mm").lower() == "cm" else 1.0))
        short = bool(lx.SHORT_AXIS.search(text[max(0, m.start() - 40):m.start()])) or bool(
            lx.SHORT_AXIS_AFTER.match(text[m.end():]))
        out.append((max(vals), short))
    return out


def count_before(text: str, noun_start: int) -> int | None:
    """The count word right before a lesion noun ("two hypodense lesions"): an int, -1 for "multiple"."""
    window = lx.SIZE.sub(lambda m: " " if any(m.group(u) for u in ("ua", "ub", "uc")) else m.group(), 
                        text[max(0, noun_start - 60):noun_start])
    words = re.findall(r"[\w-]+", window.lower())[-5:]
    for k in range(len(words) - 1, -1, -1):
        w = words[k]
        if w.isdigit() and int(w) < 50:
            if k > 0 and words[k - 1] in ("segment", "segments", "s", "level", "station", "grade"):
                break  # "segment 8 lesion"
            return int(w)
        if w in lx.COUNT_WORDS:
            return lx.COUNT_WORDS[w]
        if w in lx.MANY_WORDS:
            return -1
        if w in ("of", "in", "with", "is", "are", "there", "seen", "and"):
            break
    return None


class RuleExtractor:
    name = "rules"

    def __init__(self, kg: KnowledgeGraph | None = None):
        self.kg = kg or load_kg()
        self.table = merged_labels()

    # -- organs -----------------------------------------------------------------------------------
    def _organ_of(self, ids: tuple[int, ...]) -> tuple[str | None, str | None]:
        """(organ, sub-region) of one mention's label ids; a sub-region only when it is unambiguous."""
        names = [self.table.by_id(i).name for i in ids]
        parents = {self.table.by_id(self.table.parent_or_self(i)).name for i in ids}
        if len(parents) != 1:
            return None, None
        organ = parents.pop()
        parts = [n for n in names if n != organ]
        return organ, (parts[0] if len(parts) == 1 and len(names) == 1 else None)

    def _locate(self, mentions, noun_pos: int | None) -> tuple[str | None, str | None, list[str]]:
        """(organ, its first sub-region, every sub-region of that organ in mention order)."""
        located = []
        for m in mentions:
            organ, part = self._organ_of(m.label_ids)
            if organ is not None and not m.negated:
                located.append((m, organ, part))
        if not located:
            return None, None, []
        if noun_pos is not None:  # "lesion in/of the X" beats an organ named elsewhere in the segment
            after = [x for x in located if x[0].start >= noun_pos]
            if after:
                located = after + [x for x in located if x[0].start < noun_pos]
        organ = located[0][1]
        first = next((p for m, o, p in located if o == organ and p), None)
        parts = list(dict.fromkeys(q for m, o, p in located if o == organ for q in self._parts_in_order(m, organ)))
        return organ, first, parts

    def _parts_in_order(self, mention, organ: str) -> list[str]:
        """The sub-regions one mention names, in the order its text names them: "segments 7 and 5" is one
        mention whose ids are sorted (5, 7); the numbers in its surface give the order. [] when unsure."""
        names = [self.table.by_id(i).name for i in mention.label_ids]
        parts = [n for n in names if n != organ]
        if len(parts) < 2:
            return parts
        numbers = [ROMAN.get(w.upper(), w) for w in re.findall(r"\b(?:\d|[IVX]{1,4})\b", mention.surface)]
        numbered = {n: re.search(r"_(\d)$", n).group(1) for n in parts if re.search(r"_(\d)$", n)}
        order = [next(n for n, k in numbered.items() if k == str(num)) for num in numbers if str(num) in numbered.values()]
        return order if sorted(order) == sorted(parts) else []

    # -- main -------------------------------------------------------------------------------------
    def extract(self, case_id: str, inp: ReportInput) -> CaseFindings:
        report = " ".join((inp.report or "").split())
        sec = sections(report)
        f = CaseFindings(case_id=case_id)
        findings_text = sec["findings"] or report
        f.impression = (inp.impression or sec["impression"] or "").strip() or None
        pathology_text = " ".join(x for x in (inp.pathology, sec["pathology"]) if x).strip()
        f.pathology_text = pathology_text or None
        mentions = match_organs(findings_text)
        described: list[Lesion] = []
        context_organ: str | None = None
        cm = clause_map(findings_text)
        cuts = [0, *cm.sentence_cuts, len(findings_text)]
        for s0, s1 in zip(cuts, cuts[1:]):
            sentence = findings_text[s0:s1]
            if not sentence.strip():
                continue
            in_sentence = [m for m in mentions if s0 <= m.start < s1]
            sentence_organ = self._locate(in_sentence, None)[0]
            for seg in self._segments(sentence, s0):
                seg_mentions = [m for m in in_sentence if seg.start <= m.start < seg.start + len(seg.text)]
                if _NODE_WORD.search(seg.text):
                    self._nodes(seg.text, f)
                    continue
                if described and self._more_attributes(seg.text, seg_mentions, described[-1]):
                    continue
                if described and self._interprets(seg.text, seg_mentions, described):
                    continue
                lesion = self._lesion(seg, seg_mentions, f)
                if lesion is None:
                    continue
                if lesion.organ is None:
                    lesion.organ = sentence_organ or context_organ
                    if lesion.organ is not None:
                        lesion.sources["organ"] = "rules"
                if lesion.organ is None:
                    f.drop(f"lesion '{seg.text.strip()}'", "names no organ")
                    continue
                context_organ = lesion.organ
                self._add(lesion, seg.text, described, f)
            for m in in_sentence:
                organ, _ = self._organ_of(m.label_ids)
                if m.negated and organ and organ not in f.normal_organs:
                    f.normal_organs.append(organ)
        if _RX["DISTANT_NEGATED"].search(report):
            f.metastases_stated = True
        if _RX["NODES_NEGATED"].search(report):
            f.nodes_stated = True
        self.assemble(f, described, report)
        return f

    def _segments(self, sentence: str, offset: int) -> list[_Segment]:
        out, last = [], 0
        for m in _SPLIT.finditer(sentence):
            out.append(_Segment(sentence[last:m.start()], offset + last))
            last = m.end()
        out.append(_Segment(sentence[last:], offset + last))
        return [s for s in out if s.text.strip()]

    def _nodes(self, text: str, f: CaseFindings) -> None:
        f.nodes_stated = True
        if _RX["DISTANT_NEGATED"].search(text):
            f.metastases_stated = True
        word = _NODE_WORD.search(text)
        if negated_at(text, word.start(), word.end()) or _RX["NODE_NEGATIVE"].search(text):
            return
        sizes = [s for s, _ in sizes_mm(text)]
        limit = self.kg.lymph_node["enlarged_short_axis_mm"]
        at_least = any(s >= limit and re.search(rf"(?:{lx.AT_LEAST})\s*$", text[:m.start()], re.IGNORECASE)
                       for m in lx.SIZE.finditer(text) for s, _ in sizes_mm(m.group()))
        positive = bool(_RX["NODE_POSITIVE"].search(text)) or at_least or any(s > limit for s in sizes)
        if not positive:
            return
        n = max((c for c in (count_before(text, m.start()) for m in _NODE_WORD.finditer(text)) if c is not None),
                default=None)
        if n is None:
            plural = bool(re.search(r"nodes\b|lymphadenopathy|adenopathy", text, re.IGNORECASE))
            n = -1 if plural and not sizes else (len(sizes) if plural else 1) or 1
        if n == -1:
            f.nodes_counted = False
            n = 2  # "enlarged nodes": at least two, exact number not stated
        largest = max(sizes) if sizes else None
        f.nodes += [Node(largest if k == 0 else None, text.strip()) for k in range(n)]

    def _interprets(self, text: str, mentions, described: list[Lesion]) -> bool:
        """A segment that only names a diagnosis for lesions already described ("Findings are consistent
        with multifocal hepatocellular carcinoma"): no size, no sub-region, no organ other than theirs."""
        noun = _NOUN.search(text)
        if noun is None or sizes_mm(text):
            return False
        if not re.search(rf"(?:{lx.INTERPRETATION})\s+(?:[\w-]+\s+){{0,3}}$", text[:noun.start()], re.IGNORECASE):
            return False
        organs = {self._organ_of(m.label_ids) for m in mentions if not m.negated}
        if any(part for _, part in organs):
            return False
        return all(organ in {d.organ for d in described} for organ, _ in organs)

    def _more_attributes(self, text: str, mentions, last: Lesion) -> bool:
        """A segment with attributes but no lesion, size or other organ ("; ill-defined serosal margin.")
        describes the lesion before it: fill what that one lacks. True when it did."""
        duct_only = attributes(text)["others"] == ["pancreatic duct dilatation"]  # "duct dilated to 6 mm": a calibre
        if _NOUN.search(text) or (not duct_only and any(not short for _, short in sizes_mm(text))):
            return False
        if any(self._organ_of(m.label_ids)[0] not in (None, last.organ) for m in mentions if not m.negated):
            return False
        attrs = attributes(text)
        if not any(attrs[k] for k in ("density", "shape", "boundary", "others")):
            return False
        for k in ("shape", "boundary", "density", "vessel_invasion"):
            if getattr(last, k) is None and attrs[k] is not None:
                setattr(last, k, attrs[k])
                last.sources[k] = "rules"
        last.others += [o for o in attrs["others"] if o not in last.others]
        if last.others:
            last.sources["others"] = "rules"
        return True

    def _lesion(self, seg: _Segment, mentions, f: CaseFindings) -> Lesion | None:
        text = seg.text
        nouns = [m for m in _NOUN.finditer(text) if not negated_at(text, m.start(), m.end())]
        all_nouns = list(_NOUN.finditer(text))
        sizes = [s for s, short in sizes_mm(text) if not short]
        attrs = attributes(text)
        organ, part, parts = self._locate(mentions, nouns[0].start() + seg.start if nouns else None)
        n_parts = len(parts)
        if not nouns:
            if all_nouns:  # every lesion noun negated: "no focal lesion in the liver"
                f.drop(f"'{text.strip()}'", "negated mention")
                return None
            if not (sizes and organ and (attrs["density"] or attrs["shape"] or attrs["boundary"])):
                return None
        hedge_before = _RX["HEDGE_BEFORE"].search(text[:nouns[0].start()] if nouns else text)
        if _RX["HEDGE"].search(text) or hedge_before:
            f.drop(f"lesion '{text.strip()}'", "hedged mention (uncertain)")
            return None
        kind = "metastasis" if _RX["METASTASIS"].search(text) else "primary"
        size = None
        if sizes:
            size = max(sizes)
            plural = any(m.group().lower().endswith(("s", "ci")) and m.group().lower() not in ("focus", "mass")
                         for m in nouns) or re.search(r"\b(?:two|three|both|\d)\b[^.]*\b(?:lesions|masses|nodules)", text, re.I)
            if len(sizes) > 1 and not plural and not _UP_TO.search(text) and \
                    min(sizes) < (1 - SIZE_TOLERANCE) * size and not re.search(r"\bx\b|×|\bby\b", text):
                f.drop(f"size of '{text.strip()}'", f"contradictory sizes {sorted(sizes)} mm")
                size = None
        les = Lesion(organ=organ, substructure=part, diameter_mm=size, kind=kind, evidence=text.strip(), **attrs)
        les.sources = {k: "rules" for k in ("organ", "substructure", "diameter_mm", "shape", "boundary", "density",
                                            "vessel_invasion") if getattr(les, k) is not None}
        if les.others:
            les.sources["others"] = "rules"
        n = max((c for c in (count_before(text, m.start()) for m in nouns) if c is not None), default=None)
        if n is None and nouns and nouns[0].group().lower().endswith(("s", "ses", "ci")) and \
                nouns[0].group().lower() not in ("focus", "mass", "thickening"):
            n = -1
        all_sizes = [s for s, short in sizes_mm(text) if not short]
        if n_parts > 1 and len(all_sizes) == n_parts and n != 1:
            # "lesions in S5 (18 mm) and S7 (26 mm)", "2 cm and 1.5 cm lesions in segments 2 and 3": sizes and
            # sub-regions pair in order; the described (largest) one lies in the largest one's sub-region
            les.substructure = parts[all_sizes.index(max(all_sizes))]
            if n is None or n == -1:
                n = n_parts
        elif n_parts > 1 and (n is None or n == 1):  # one lesion over several sub-regions: none of them
            les.substructure = None
            les.sources.pop("substructure", None)
        les.stated_count = n
        return les

    def _add(self, les: Lesion, text: str, described: list[Lesion], f: CaseFindings) -> None:
        n = les.stated_count
        prev = next((d for d in reversed(described) if d.organ == les.organ and d.kind == les.kind), None)
        refers = bool(_REFERS.search(text)) and not _ANOTHER.search(text)
        if prev is not None and refers:
            if les.diameter_mm and prev.diameter_mm and abs(les.diameter_mm - prev.diameter_mm) > \
                    SIZE_TOLERANCE * max(les.diameter_mm, prev.diameter_mm):
                f.drop(f"size of the {les.organ} lesion", f"contradictory sizes {prev.diameter_mm:g} and "
                       f"{les.diameter_mm:g} mm")
                prev.diameter_mm = None
                prev.sources.pop("diameter_mm", None)
                les.diameter_mm = None
            for k in ("substructure", "diameter_mm", "shape", "boundary", "density", "vessel_invasion"):
                if getattr(prev, k) is None and getattr(les, k) is not None:
                    setattr(prev, k, getattr(les, k))
                    prev.sources[k] = "rules"
            prev.others += [o for o in les.others if o not in prev.others]
            if n and n > 1:
                prev.stated_count = max(prev.stated_count or 1, n)
            return
        described.append(les)

    # -- the case ---------------------------------------------------------------------------------
    def assemble(self, f: CaseFindings, described: list[Lesion], report: str,
                 pathology: tuple[str | None, str] | None = None) -> None:
        """Sort the described lesions into primary / metastasis / incidental, pad each organ to its stated
        count, set pathology (``pathology`` = (name, source) given by another extractor), primary organ,
        category and the stage the texts state."""
        counts: dict[tuple[str, str], int] = {}
        path, source = pathology if pathology is not None else self._pathology(f, described, report)
        f.pathology = path
        if path:
            f.sources["pathology"] = source
        primaries = [d for d in described if d.kind == "primary"]
        if path:
            f.primary_organ = self.kg.pathologies[path].organ
        elif primaries:
            f.primary_organ = max(primaries, key=lambda d: d.diameter_mm or 0).organ
        if f.primary_organ:
            f.sources["primary_organ"] = source if path else "rules"
        for d in described:
            stated = d.stated_count
            group = (f.lesions if d.kind == "primary" and d.organ == f.primary_organ else
                     f.metastases if d.kind == "metastasis" else f.incidental)
            group.append(d)
            if stated is not None:
                old = counts.get((d.organ, d.kind))
                counts[(d.organ, d.kind)] = -1 if -1 in (old, stated) else max(old or 0, stated)
        for (organ, kind), n in counts.items():
            group = f.lesions if kind == "primary" and organ == f.primary_organ else \
                f.metastases if kind == "metastasis" else f.incidental
            have = sum(1 for g in group if g.organ == organ)
            if n == -1:
                f.unknown_counts.append(organ)
                n = max(have, 2)
            for _ in range(n - have):
                group.append(Lesion(organ=organ, kind=kind, evidence="(counted, not described)"))
        if f.metastases:
            f.metastases_stated = True
        if path:
            f.category = "malignant" if self.kg.pathologies[path].malignant else "benign"
        elif f.lesions:
            f.category = "indeterminate"
        f.stated_stage = stated_stage(f.pathology_text or "", report if f.category == "malignant" else "")
        if f.stated_stage:
            f.sources["stage"] = "rules"

    def _pathology(self, f: CaseFindings, described: list[Lesion], findings_text: str = "") -> tuple[str | None, str]:
        organs = {d.organ for d in described if d.kind == "primary"}
        for text in (f.pathology_text, f.impression, findings_text):
            if not text:
                continue
            hit = self._named_pathology(text, organs)
            if hit:
                return hit, "rules"
        primaries = [d for d in described if d.kind == "primary"]
        if not primaries:
            return None, ""
        main = max(primaries, key=lambda d: d.diameter_mm or 0)
        derived = derive_pathology(self.kg, main)
        return (derived, "derived") if derived else (None, "")

    def _named_pathology(self, text: str, organs: set[str]) -> str | None:
        """The pathology a text names for the described organs: a malignant one before a benign one ("pancreatic
        carcinoma; incidental hepatic hemangioma"), then the first in the text; a generic word ("carcinoma")
        through the organ named right before it, or the only described organ."""
        hits = []
        for name, rx in _PATHOLOGY:
            for m in rx.finditer(text):
                organ = self.kg.pathologies[name].organ
                if negated_at(text, m.start(), m.end()) or (organs and organ not in organs):
                    continue
                hits.append((not self.kg.pathologies[name].malignant, m.start(), name))
                break
        generic = _RX["PATHOLOGY_GENERIC"].search(text)
        if generic is not None and not negated_at(text, generic.start(), generic.end()) and \
                not any(start <= generic.start() < start + 40 for _, start, _ in hits):  # not inside a named one
            near = {self._organ_of(m.label_ids)[0] for m in match_organs(text)
                    if not m.negated and 0 <= generic.start() - m.end <= 20}
            near.discard(None)
            organ = next(iter(near)) if len(near) == 1 else next(iter(organs)) if len(organs) == 1 else None
            malignant = [p for p in self.kg.pathologies_of(organ) if p.malignant] if organ else []
            if malignant and (not organs or organ in organs):
                hits.append((False, generic.start(), max(malignant, key=lambda p: p.weight).name))
        return min(hits)[2] if hits else None


def derive_pathology(kg: KnowledgeGraph, les: Lesion) -> str | None:
    """The one pathology of the lesion's organ whose knowledge-graph pattern agrees with everything the report
    states of the lesion: its density and boundary where stated (an unstated one agrees with any pattern) and
    its other features (exactly; none stated is none). An unstated density or boundary is only let pass when
    the report names another feature ("circumferential wall thickening"): "an 8 mm hypodensity" alone fits
    too much to name a disease. None when no or several pathologies fit."""
    if (les.density is None or les.boundary is None) and not les.others:
        return None
    fits = []
    for p in kg.pathologies_of(les.organ):
        for q in p.patterns:
            if les.density is not None and q.density != les.density:
                continue
            if les.boundary is not None and les.boundary not in q.boundary:
                continue
            if any(set(group) == set(les.others) for group in q.others):
                fits.append(p.name)
                break
    return fits[0] if len(set(fits)) == 1 else None


def stated_stage(*texts: str) -> dict[str, str]:
    """{"T": "T3", "N": "N1", "M": "M0"} from "pT3 N1 M0"-style tokens of the first text that has any;
    sub-categories fold to the knowledge graph's stages (T4a -> T4), "x" means not assessed (left out)."""
    for text in texts:
        found: dict[str, str] = {}
        for m in lx.STAGE.finditer(text or ""):
            axis, value = m.group("axis"), m.group("value").lower()
            if value == "x" or axis in found:
                continue
            found[axis] = f"{axis}{value}" if value != "is" else "Tis"
        if found:
            return found
    return {}
