"""The report chain inside a conclusion: Findings -> Impression -> Pathology (the cohort's report
answers), and plain reasoning answers that have none."""
from __future__ import annotations

import json
from pathlib import Path

from inference.iir.conclusion import Conclusion, parse_conclusion, report_sections

DEMO_SAMPLES = Path(__file__).resolve().parents[1] / "resources" / "demo_case" / "samples.jsonl"

REPORT = ("Reasoning Process: Findings: There is a 33 mm hypodense lesion in the pancreatic head. Two enlarged "
          "peripancreatic lymph nodes are present. Impression: the ill-defined hypodense pancreatic mass suggests "
          "an infiltrative malignant tumor. Pathology: consistent with pancreatic ductal adenocarcinoma, staged "
          "T2 N1 M1. Summary: pancreatic ductal adenocarcinoma of the pancreatic head. Thus, the answer is "
          "pancreatic ductal adenocarcinoma, T2 N1 M1.")


def test_report_answer_splits_into_findings_impression_pathology():
    c = parse_conclusion(REPORT)
    s = c.sections
    assert s is not None
    assert s.findings == ("There is a 33 mm hypodense lesion in the pancreatic head. Two enlarged "
                          "peripancreatic lymph nodes are present.")
    assert s.impression.startswith("the ill-defined hypodense") and s.impression.endswith("malignant tumor.")
    assert s.pathology == "consistent with pancreatic ductal adenocarcinoma, staged T2 N1 M1."
    assert s.preamble == ""
    assert c.summary == "pancreatic ductal adenocarcinoma of the pancreatic head."
    assert c.answer == "pancreatic ductal adenocarcinoma, T2 N1 M1"
    # the run.json form is unchanged: sections are derived, not stored
    assert set(c.to_dict()) == {"reasoning", "answer", "found", "summary"}
    assert Conclusion(**c.to_dict()).sections == s


def test_plain_reasoning_has_no_sections_and_partial_reports_keep_what_they_have():
    c = parse_conclusion("Reasoning Process: The pancreas shows a 33 mm mass. Summary: T2. Thus, the answer is B. T2.")
    assert c.sections is None and c.reasoning == "The pancreas shows a 33 mm mass."
    s = report_sections("Some context first. impression: likely benign cyst.")
    assert s is not None and s.impression == "likely benign cyst." and s.findings == "" and s.pathology == ""
    assert s.preamble == "Some context first."
    assert report_sections("") is None


def test_every_bundled_report_sample_has_the_full_chain():
    if not DEMO_SAMPLES.exists():
        import pytest
        pytest.skip(f"demo case absent: {DEMO_SAMPLES}")
    reports = [json.loads(line) for line in DEMO_SAMPLES.read_text().splitlines() if '"task": "report"' in line]
    assert reports
    for sample in reports:
        s = parse_conclusion(sample["answer"]).sections
        assert s is not None and s.findings and s.impression and s.pathology, sample["id"]
