"""The demo model: a small TumorChain trained on the synthetic cohort with this module, on CPU.

``python -m training.demo_model.build --out resources/demo_model --seed 0`` makes it (recipe.json
holds every size and setting); see build.py.
"""
