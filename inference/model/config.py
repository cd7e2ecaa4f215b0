"""TumorChainConfig: every size of the model in one JSON-serialisable object.

The vision defaults are M3D-CLIP's ViT-B (input 1x32x256x256, patch 4x16x16, 768 wide, 12 layers),
so its published weights load unchanged; tests shrink them.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from inference.vocabulary import (CT_TOKEN, GAMMA_MODES, ORGAN_TOKEN, PREPROCESSINGS, PROJECTOR_TYPES,
                                  PROMPT_FORMATS)

PATCH_EMBED_TYPES = ("perceptron", "conv")
MAX_WIDTH = 1 << 16  # bounds on sizes read from a config.json, so a damaged one (hidden_size -128,
MAX_EDGE = 4096  # 2^31) is a ValueError naming the field, never a tensor constructor's RuntimeError


def _check_size(name: str, value, low: int = 1, high: int = MAX_WIDTH) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}")


@dataclass
class VisionConfig:
    """The 3D ViT (M3D-CLIP's vision encoder). Spatial tuples are (depth, height, width)."""

    in_channels: int = 1
    img_size: tuple[int, int, int] = (32, 256, 256)
    patch_size: tuple[int, int, int] = (4, 16, 16)
    hidden_size: int = 768
    mlp_dim: int = 3072
    num_layers: int = 12
    num_heads: int = 12
    patch_embed: str = "perceptron"  # M3D-CLIP: MONAI "perceptron" (rearrange + Linear)
    qkv_bias: bool = False
    cls_token: bool = True  # M3D-CLIP prepends a class token; its output is dropped
    layer_norm_eps: float = 1e-5
    # Optional convolutional stem before the patch embedding (not in M3D, whose weights load without
    # one): output channels and (d, h, w) stride of each 3x3x3 conv + GELU layer. A from-scratch
    # encoder trained on a few hundred cases has no other way to get a CNN's locality bias.
    stem_channels: tuple[int, ...] = ()
    stem_strides: tuple[tuple[int, int, int], ...] = ()

    def __post_init__(self) -> None:
        self.img_size = tuple(int(s) for s in self.img_size)  # JSON gives lists
        self.patch_size = tuple(int(s) for s in self.patch_size)
        self.stem_channels = tuple(int(c) for c in self.stem_channels)
        self.stem_strides = tuple(tuple(int(v) for v in s) for s in self.stem_strides)
        for name, high in (("in_channels", 64), ("hidden_size", MAX_WIDTH), ("mlp_dim", 4 * MAX_WIDTH),
                           ("num_layers", 256), ("num_heads", 1024)):
            _check_size(f"vision.{name}", getattr(self, name), high=high)
        for name in ("img_size", "patch_size", "stem_channels"):
            for value in getattr(self, name):
                _check_size(f"vision.{name}", value, high=MAX_EDGE)
        if len(self.stem_strides) != len(self.stem_channels):
            raise ValueError(f"stem_strides needs one (d, h, w) stride per stem layer: {len(self.stem_channels)} "
                             f"layers, {len(self.stem_strides)} strides")
        if any(len(s) != 3 or min(s) < 1 for s in self.stem_strides):
            raise ValueError(f"stem_strides must be (d, h, w) positive integers, got {self.stem_strides}")
        if any(p % s for p, s in zip(self.patch_size, self.stem_stride)):
            raise ValueError(f"patch_size {self.patch_size} is not a multiple of the stem's total stride {self.stem_stride}")
        if len(self.img_size) != 3 or len(self.patch_size) != 3:
            raise ValueError(f"img_size and patch_size must have 3 entries, got {self.img_size}, {self.patch_size}")
        if any(i % p for i, p in zip(self.img_size, self.patch_size)):
            raise ValueError(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.patch_embed not in PATCH_EMBED_TYPES:
            raise ValueError(f"patch_embed must be one of {PATCH_EMBED_TYPES}, got {self.patch_embed!r}")

    @property
    def grid(self) -> tuple[int, int, int]:
        """Patch grid (gd, gh, gw): (8, 16, 16) for M3D."""
        return tuple(i // p for i, p in zip(self.img_size, self.patch_size))  # type: ignore[return-value]

    @property
    def stem_stride(self) -> tuple[int, int, int]:
        """The stem's total stride per axis ((1, 1, 1) without a stem)."""
        total = [1, 1, 1]
        for stride in self.stem_strides:
            total = [t * v for t, v in zip(total, stride)]
        return tuple(total)  # type: ignore[return-value]

    @property
    def embed_channels(self) -> int:
        """Channels the patch embedding reads: the stem's last layer, else the image's."""
        return self.stem_channels[-1] if self.stem_channels else self.in_channels

    @property
    def embed_patch_size(self) -> tuple[int, int, int]:
        """A patch measured on the stem's output grid (= patch_size without a stem)."""
        return tuple(p // s for p, s in zip(self.patch_size, self.stem_stride))  # type: ignore[return-value]

    @property
    def n_patches(self) -> int:
        gd, gh, gw = self.grid
        return gd * gh * gw


@dataclass
class TumorChainConfig:
    """Sizes and switches of TumorChainModel; saved as config.json beside the weights.

    llm_hidden_size is K, the LLM width that every visual token is projected to; it is filled
    from the LLM's own config when the model is built.
    """

    vision: VisionConfig = field(default_factory=VisionConfig)
    # Global tokens: average-pool the patch grid by this kernel (M3D's spatial pooling), then project.
    pool_size: tuple[int, int, int] = (2, 2, 2)
    # Projector P: Linear(Dv, projector_hidden) -> ReLU -> Linear(projector_hidden, K); None = K.
    projector_hidden: int | None = None
    # "m3d_spp": M3D-LaMed's projector MLP instead, Linear(Dv, K) then (GELU, Linear(K, K)) x
    # (projector_layers - 1), keys projector.projector.{0,2,..}; the pooling above is its "spatial" pooling.
    projector_type: str = "mlp_relu"
    projector_layers: int = 2
    # The auxiliary organ classifier Cls (paper eq. 8); a converted M3D-LaMed model has none.
    organ_classifier: bool = True
    # How the CT becomes the input volume, and how round 1's prompt is laid out (vocabulary.py).
    preprocessing: str = "tumorchain"
    prompt_format: str = "tumorchain"
    # Crop mode: pool the re-encoded box's patch grid by pool_size (like the global tokens) before
    # Gamma picks organ tokens, so the projector sees the pooled features it was trained on (M3D).
    organ_pooling: bool = False
    llm_hidden_size: int = 0
    # Gamma: tokens per organ (Ll) and how they are taken ("tokens": from the case's own encoding;
    # "crop": re-encode the organ's bounding box at higher resolution; "masked": mean and variance of
    # the conv stem's features over the organ's own voxels in each token's patches, see organ_tokens).
    n_organ_tokens: int = 64
    gamma_mode: str = "tokens"
    crop_margin: float = 0.15  # crop mode: margin added on each side, as a fraction of the organ's extent
    crop_min_extent: tuple[int, int, int] = (4, 32, 32)  # crop mode: smallest box, model voxels (<= 8x zoom)
    # LLM: where it came from and where save_pretrained puts it.
    llm_model_type: str = ""
    llm_source: str = ""  # folder name of the base LLM the model was built from (provenance only)
    llm_subfolder: str = "llm"
    ct_token: str = CT_TOKEN
    organ_token: str = ORGAN_TOKEN
    # Auxiliary classifier weight alpha in L_total (paper eq. 8); used by training.
    cls_loss_weight: float = 1.0
    model_type: str = "tumorchain"
    version: int = 1
    # Where the weights came from and what was left out (a converter's notes; run.json repeats them).
    source_notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.vision, dict):
            self.vision = VisionConfig(**self.vision)
        self.pool_size = tuple(int(s) for s in self.pool_size)
        self.crop_min_extent = tuple(int(s) for s in self.crop_min_extent)
        for value in (*self.pool_size, *self.crop_min_extent):
            _check_size("pool_size / crop_min_extent", value, high=MAX_EDGE)
        if self.projector_hidden is not None:
            _check_size("projector_hidden", self.projector_hidden, high=4 * MAX_WIDTH)
        _check_size("llm_hidden_size", self.llm_hidden_size, low=0)  # 0: taken from the LLM
        if not isinstance(self.llm_subfolder, str) or self.llm_subfolder in ("", ".", "..") or "/" in self.llm_subfolder \
                or "\\" in self.llm_subfolder:
            raise ValueError(f"llm_subfolder must be a folder name inside the model folder, got {self.llm_subfolder!r}")
        for name, allowed in (("projector_type", PROJECTOR_TYPES), ("preprocessing", PREPROCESSINGS),
                              ("prompt_format", PROMPT_FORMATS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        _check_size("projector_layers", self.projector_layers, high=16)
        if not isinstance(self.source_notes, list) or not all(isinstance(n, str) for n in self.source_notes):
            raise ValueError(f"source_notes must be a list of strings, got {self.source_notes!r}")
        if self.gamma_mode not in GAMMA_MODES:
            raise ValueError(f"gamma_mode must be one of {GAMMA_MODES}, got {self.gamma_mode!r}")
        if self.gamma_mode == "masked" and not self.vision.stem_channels:
            raise ValueError("gamma_mode 'masked' pools the conv stem's features: set vision.stem_channels")
        if any(g % p for g, p in zip(self.vision.grid, self.pool_size)):
            raise ValueError(f"patch grid {self.vision.grid} is not a multiple of pool_size {self.pool_size}")
        if self.organ_pooling and self.gamma_mode != "crop":
            raise ValueError("organ_pooling pools a re-encoded organ box: it needs gamma_mode 'crop'")
        most = self.n_global_tokens if self.organ_pooling else self.vision.n_patches
        if not 1 <= self.n_organ_tokens <= most:
            raise ValueError(f"n_organ_tokens must be in 1..{most}, got {self.n_organ_tokens}")

    @property
    def pooled_grid(self) -> tuple[int, int, int]:
        """Grid of the global tokens: (4, 8, 8) for M3D with pool 2."""
        return tuple(g // p for g, p in zip(self.vision.grid, self.pool_size))  # type: ignore[return-value]

    @property
    def n_global_tokens(self) -> int:
        """Lg: 256 for M3D sizes."""
        d, h, w = self.pooled_grid
        return d * h * w

    @property
    def projector_width(self) -> int:
        return self.projector_hidden or self.llm_hidden_size

    def to_dict(self) -> dict:
        out = asdict(self)
        out["n_global_tokens"] = self.n_global_tokens  # informative; recomputed on load
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "TumorChainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known - {"n_global_tokens"})
        if unknown:
            raise ValueError(f"unknown TumorChainConfig fields: {unknown}")
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "TumorChainConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))
