"""The site data engine (issue 18; paper section 2.2 and appendix 11): a hospital's CTs and report texts
become TumorCoT chains for all four tasks, offline.

    convert.py            the CSV front end of ``tumorchain-train convert-site`` (one row at a time; bad rows skipped)
    findings.py           the structured findings of a case (per-field extractor sources)
    rule_extractor.py     report text -> findings, by rules (lexicon.py: the vocabulary); always available
    llm_extractor.py      the same through a site-run OpenAI-compatible endpoint, falling back to the rules
    tnm.py                stage given (column, pathology text) or derived by the knowledge graph's rules
    grounding.py          findings checked and completed against the organ, sub-region and lesion masks
    chains.py             findings -> samples through the synthetic cohort's own chain writers
    conversion_report.py  what each CSV line gave, what was dropped and why; totals per subtask
    scoring.py            field precision/recall against ground truth or hand labels (tests, benchmarks)
"""
