"""A tiny nnU-Net model folder saved the way nnU-Net's trainer saves one (run inside the TotalSegmentator
environment): plans.json and dataset.json that nnU-Net's predictor reads, and fold_0/checkpoint_final.pth
with the trainer's checkpoint dict (network, SGD state after a step, nnU-Net's own logger with numpy
float64 metrics, init_args with a torch.device, the trainer's name, the mirroring axes), written by
torch.save. With --evil MARKER the checkpoint also carries an object whose unpickling creates the
folder MARKER: what a tampered checkpoint could do.

    python nnunet_checkpoint.py OUT [--evil MARKER]      writes the folder, prints the weights' sum
    python nnunet_checkpoint.py --load OUT                loads it with nnU-Net's predictor under the
                                                           worker's guard; prints JSON
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

PLANS = {
    "dataset_name": "Dataset999_Tiny", "plans_name": "nnUNetPlans",
    "original_median_spacing_after_transp": [3.0, 3.0, 3.0], "original_median_shape_after_transp": [32, 32, 32],
    "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
    "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
    "foreground_intensity_properties_per_channel": {"0": {
        "max": 1000.0, "mean": 50.0, "median": 40.0, "min": -1000.0, "percentile_00_5": -900.0,
        "percentile_99_5": 900.0, "std": 100.0}},
    "configurations": {"3d_fullres": {
        "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
        "patch_size": [32, 32, 32], "median_image_size_in_voxels": [32, 32, 32], "spacing": [3.0, 3.0, 3.0],
        "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False], "batch_dice": False,
        "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
        "architecture": {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {"n_stages": 2, "features_per_stage": [4, 8], "conv_op": "torch.nn.modules.conv.Conv3d",
                            "kernel_sizes": [[3, 3, 3], [3, 3, 3]], "strides": [[1, 1, 1], [2, 2, 2]],
                            "n_conv_per_stage": [1, 1], "n_conv_per_stage_decoder": [1], "conv_bias": True,
                            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                            "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None,
                            "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
                            "nonlin_kwargs": {"inplace": True}},
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}}},
}
DATASET = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1}, "numTraining": 1,
           "file_ending": ".nii.gz"}


class MakesAFolder:
    """Unpickling it calls os.mkdir(marker): code that runs on load."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def network():
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = PlansManager(PLANS)
    config = plans.get_configuration("3d_fullres")
    return nnUNetTrainer.build_network_architecture(plans, config, 1, 2, enable_deep_supervision=False)


def write(out: Path, evil: str | None) -> float:
    from nnunetv2.training.logging.nnunet_logger import LocalLogger

    torch.manual_seed(0)
    net = network()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.99, nesterov=True, weight_decay=3e-5)
    net(torch.randn(1, 1, 32, 32, 32)).mean().backward()
    optimizer.step()
    logger = LocalLogger()
    for epoch in range(2):
        logger.log("mean_fg_dice", np.nanmean([0.5 + epoch, np.nan]), epoch)  # numpy float64, as the trainer logs
        logger.log("ema_fg_dice", np.float64(0.4 + 0.1 * epoch), epoch)
        logger.log("dice_per_class_or_region", [np.float64(0.5)], epoch)
        logger.log("train_losses", np.mean([-0.1, -0.2]), epoch)
        logger.log("val_losses", np.mean([-0.1, -0.3]), epoch)
        logger.log("lrs", 0.01, epoch)
        logger.log("epoch_start_timestamps", time.time(), epoch)
        logger.log("epoch_end_timestamps", time.time(), epoch)
    checkpoint = {
        "network_weights": net.state_dict(), "optimizer_state": optimizer.state_dict(), "grad_scaler_state": None,
        "logging": logger.get_checkpoint(), "_best_ema": np.float64(0.5), "current_epoch": 2,
        "init_args": {"plans": PLANS, "configuration": "3d_fullres", "fold": 0, "dataset_json": DATASET,
                      "device": torch.device("cuda")},
        "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": (0, 1, 2),
    }
    if evil:
        checkpoint["init_args"]["extra"] = MakesAFolder(evil)
    (out / "fold_0").mkdir(parents=True, exist_ok=True)
    (out / "plans.json").write_text(json.dumps(PLANS))
    (out / "dataset.json").write_text(json.dumps(DATASET))
    torch.save(checkpoint, out / "fold_0" / "checkpoint_final.pth")
    return float(sum(p.double().sum() for p in net.state_dict().values()))


def load(folder: Path) -> dict:
    """nnU-Net's own loading path (the predictor TotalSegmentator uses), with the worker's guard on."""
    sys.path.insert(0, os.environ["TC_WORKER_DIR"])
    from totalseg_checkpoints import UnsafeCheckpoint, guard_checkpoint_loading

    guarded = guard_checkpoint_loading()
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(device=torch.device("cpu"), verbose=False)
    try:
        predictor.initialize_from_trained_model_folder(str(folder), use_folds=(0,), checkpoint_name="checkpoint_final.pth")
    except UnsafeCheckpoint as exc:
        return {"guarded": guarded, "refused": str(exc)}
    weights = predictor.network.state_dict()
    return {"guarded": guarded, "trainer": predictor.trainer_name, "mirroring": list(predictor.allowed_mirroring_axes),
            "sum": float(sum(p.double().sum() for p in weights.values()))}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("--evil")
    parser.add_argument("--load", action="store_true")
    a = parser.parse_args()
    print(json.dumps(load(a.folder) if a.load else {"sum": write(a.folder, a.evil)}))
