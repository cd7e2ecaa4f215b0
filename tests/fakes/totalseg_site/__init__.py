"""Put on the TotalSegmentator worker's PYTHONPATH by tests: its sitecustomize fakes the model call."""
