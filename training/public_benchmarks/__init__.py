"""Public benchmarks in our manifest: importers from their question files, and scoring in their own
categories beside Table 1's.

    deeptumorvqa.py   DeepTumorVQA (v2: benchmark/test_qa.json, test_qa.jsonl, train/train_qa.csv) -> manifest
    categories.py     accuracy per benchmark category, aggregated the way the benchmark's leaderboard does
"""
