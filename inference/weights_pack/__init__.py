"""Offline weights packs: one tar that carries TotalSegmentator dataset folders, TumorChain model
folders and the segmentation runtime (the frozen TotalSegmentator worker) to a machine without
internet, with a manifest (sha256 and size of every file).

    export_pack(...)   inference/weights_pack/export.py    on a machine that has the weights
    import_pack(...)   inference/weights_pack/importer.py  verify everything, then install atomically
    installed(...)     inference/weights_pack/inventory.py what this machine has now
    manifest format    inference/weights_pack/manifest.py

Standard library (plus the project's model-folder checks): no Qt, no network.
"""
from inference.weights_pack.manifest import FORMAT, FORMAT_VERSION, ItemKind, Manifest, PackFile, PackItem

__all__ = ["FORMAT", "FORMAT_VERSION", "ItemKind", "Manifest", "PackFile", "PackItem"]
