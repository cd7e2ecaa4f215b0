"""Headless TumorChain: CT I/O, organ labels, segmentation expert, model, IIR loop, reports.

Never imports Qt or VTK: a cluster node or a batch job installs neither.
"""
