"""TumorChainModel: 3D encoder E_v, projector P, Gamma, classifier Cls and the LLM (paper section 3.1).

Shapes for the M3D sizes (K = LLM width, Lg = 256, Ll = config.n_organ_tokens):

    encode_case(volume (1, 1, 32, 256, 256))  -> CaseEncoding(tokens (1, 2048, 768), grid (8, 16, 16))
    global_tokens(enc)                        -> (1, Lg, K)    2x2x2 average pooling, then P
    organ_tokens(enc, mask (32, 256, 256))    -> (1, Ll, K)    Gamma (organ_tokens.py), then P
    organ_logits(organ_visual (1, Ll, K))     -> (1, 2)        Cls on the projected organ tokens
    embed_inputs(ids (B, T), tau_g, tau_l)   -> (B, T, K)

Visual tokens enter the LLM through placeholder tokens: one "<ct>" per global token and one
"<organ_feature>" per organ token (ct_placeholder() / organ_placeholder() give the strings);
embed_inputs() scatters the visual tokens over their embeddings (visual_inputs.py). It, position_ids()
and organ_inputs() (Gamma) are the one path for both the IIR generator (batch 1) and the trainer
(batch B).

Position ids are sequential for every token, visual ones included: token t of the sequence gets
position t. That is what a Qwen2.5-VL language model sees when visual features enter as plain
input embeddings without an image grid (as in an M3D/LLaVA-style wrapper), and it keeps KV-cache
decoding simple (the next position is the number of tokens so far). Qwen2.5-VL's M-RoPE takes
(3, 1, T) ids; we build them explicitly with temporal = height = width = t, which equals 1D RoPE.
Plain causal LMs get (1, T).
"""
from __future__ import annotations

from pathlib import Path
import torch
from torch import nn

from inference.errors import ModelError
from inference.preprocess import ModelInput

from .config import TumorChainConfig
from .devices import pick_device
from .llm_loader import LoadedLLM, load_llm, load_tokenizer
from .model_files import check_model_folder, load_part_weights, save_part_weights
from .organ_classifier import OrganClassifier
from .organ_tokens import OrganSelection, masked_weights_sparse, patch_coverage, select_patches
from .organ_pool import MaskedOrganPool
from .projector import make_projector, pool_patch_grid
from .vision_encoder import CaseEncoding, VisionEncoder3D
from .visual_inputs import (CropInput, crop_input, gamma_from_weights, gamma_masked, scatter_visual,
                            sequential_positions)

PARTS = ("vision_encoder", "projector", "classifier")  # what model.safetensors holds (the LLM lives in llm/)
MASKED_PART = "organ_pool"  # masked Gamma only: MaskedOrganPool, pooled stem features (+ organ id) to the projector's input


class TumorChainModel(nn.Module):
    """The whole model; build() makes a new one from a base LLM, from_pretrained() loads a saved one."""

    def __init__(self, config: TumorChainConfig, llm: LoadedLLM, tokenizer):
        super().__init__()
        if not config.llm_hidden_size:
            config.llm_hidden_size = _llm_width(llm.model)
        self.config = config
        self.vision_encoder = VisionEncoder3D(config.vision)
        self.projector = make_projector(config.projector_type, config.vision.hidden_size, config.projector_width,
                                        config.llm_hidden_size, config.projector_layers)
        if config.organ_classifier:
            self.classifier = OrganClassifier(config.llm_hidden_size)
        if config.gamma_mode == "masked":
            self.organ_pool = MaskedOrganPool(config.vision.embed_channels, config.vision.hidden_size)
        self.llm = llm.model
        self.llm_model_type = llm.model_type
        self.uses_mrope = llm.uses_mrope
        self.tokenizer = tokenizer
        self.ct_token_id, self.organ_token_id = _add_placeholder_tokens(tokenizer, self.llm, config)

    # ----------------------------------------------------------------- construction and files
    @classmethod
    def build(cls, llm_folder: str | Path, config: TumorChainConfig | None = None,
              vision_weights: str | Path | None = None, device=None, dtype=None) -> "TumorChainModel":
        """A new model: the LLM and tokenizer from a local HF folder, the encoder from converted
        M3D-CLIP safetensors (convert_m3d) or random, projector and classifier random."""
        placement = pick_device(device, dtype)
        config = config or TumorChainConfig()
        llm = load_llm(llm_folder, placement)
        config.llm_hidden_size = _llm_width(llm.model)
        config.llm_model_type = llm.model_type
        config.llm_source = Path(llm_folder).name
        model = cls(config, llm, load_tokenizer(llm_folder))
        if vision_weights is not None:
            model.load_vision_weights(vision_weights)
        return model._place(placement)

    @classmethod
    def from_pretrained(cls, folder: str | Path, device=None, dtype=None) -> "TumorChainModel":
        """Load a folder written by save_pretrained (never downloads, never unpickles)."""
        folder = Path(folder)
        config = check_model_folder(folder)
        placement = pick_device(device, dtype)
        llm = load_llm(folder / config.llm_subfolder, placement)
        tokenizer = load_tokenizer(folder, llm.model.config)
        _check_saved_llm(folder, config, llm.model, tokenizer)
        model = cls(config, llm, tokenizer)
        load_part_weights(model, folder / "model.safetensors", model.parts)
        return model._place(placement)

    @property
    def parts(self) -> tuple[str, ...]:
        """Our own modules, saved in model.safetensors."""
        own = tuple(p for p in PARTS if hasattr(self, p))  # no "classifier" when the config has none
        return own + ((MASKED_PART,) if hasattr(self, MASKED_PART) else ())

    def _place(self, placement) -> "TumorChainModel":
        """Move our own parts; the loader already placed the LLM, and casting it again would
        also cast its float32 RoPE frequency buffers to bf16."""
        for part in self.parts:
            getattr(self, part).to(device=placement.device, dtype=placement.dtype)
        return self.eval()

    def save_pretrained(self, folder: str | Path) -> None:
        """folder/config.json, model.safetensors (encoder, projector, classifier), tokenizer files,
        and the LLM in HF format under folder/<llm_subfolder>."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.config.save(folder / "config.json")
        save_part_weights(self, folder / "model.safetensors", self.parts)
        self.tokenizer.save_pretrained(str(folder))
        self.llm.save_pretrained(str(folder / self.config.llm_subfolder))

    def load_vision_weights(self, path: str | Path) -> None:
        """Encoder weights from safetensors written by `python -m inference.model.convert_m3d`."""
        load_part_weights(self, Path(path), ("vision_encoder",), prefix_in_file="")

    @property
    def device(self) -> torch.device:
        return next(self.projector.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.projector.parameters()).dtype

    @property
    def has_organ_classifier(self) -> bool:
        return hasattr(self, "classifier")

    def parameter_counts(self) -> dict[str, int]:
        parts = {name: getattr(self, name) for name in self.parts} | {"llm": self.llm}
        return {name: sum(p.numel() for p in m.parameters()) for name, m in parts.items()}

    # ----------------------------------------------------------------- visual tokens
    def encode_case(self, volume: torch.Tensor) -> CaseEncoding:
        """(1, 1, D, H, W) preprocessed volume -> patch tokens (1, N, Dv); run once per case."""
        return self.vision_encoder.encode(volume.to(device=self.device, dtype=self.dtype))

    def global_tokens(self, enc: CaseEncoding) -> torch.Tensor:
        """tau_g: (1, Lg, K), the pooled patch grid projected into the LLM width."""
        return self.projector(pool_patch_grid(enc.tokens, enc.grid, self.config.pool_size))

    def organ_selection(self, enc: CaseEncoding, mask: torch.Tensor, volume: torch.Tensor | ModelInput | None = None,
                        label: int | None = None) -> tuple[torch.Tensor, OrganSelection]:
        """Gamma before the projector, for one organ: (1, Ll, Dv) and which patches the tokens came
        from (batch 1 of organ_inputs, the trainer's path). In crop mode the selection refers to the
        grid of the re-encoded crop box; masked mode needs the organ's label id."""
        mask = self._check_mask(mask)
        box = None
        if self.config.gamma_mode == "crop":
            if volume is None:
                raise ValueError("gamma_mode 'crop' needs the volume (ModelInput or (1, 1, D, H, W) tensor)")
            crop = self.crop_input(mask, volume)
            enc, mask, box = self.encode_case(crop.volume), crop.mask, crop.box
        enc, patch = self.organ_source(enc)
        selection = select_patches(patch_coverage(mask, patch), enc.grid, self.config.n_organ_tokens)
        selection.box = box
        one = torch.zeros(1, dtype=torch.long)
        if self.config.gamma_mode == "masked":
            if enc.features is None:
                raise ValueError("gamma_mode 'masked' needs the stem features of the encoding (encode_case)")
            if label is None:
                raise ValueError("gamma_mode 'masked' needs the organ's label id")
            v = self.config.vision
            rows, cols, vals = masked_weights_sparse(mask, selection, v.stem_stride, v.embed_patch_size)
            return self.organ_inputs(enc.tokens, enc.features, None, one, torch.tensor([int(label)]),
                                     rows, cols, vals), selection
        cases = torch.arange(enc.tokens.shape[0])  # the same organ in each encoded case of the batch
        weights = selection.weights[None].expand(len(cases), *selection.weights.shape)
        return self.organ_inputs(enc.tokens, None, weights, cases), selection

    def organ_source(self, enc: CaseEncoding) -> tuple[CaseEncoding, tuple[int, int, int]]:
        """The tokens Gamma picks from and the voxel size of one of them: the encoding's patches, or
        with organ_pooling its grid pooled like the global tokens (what M3D's projector was trained on)."""
        if not self.config.organ_pooling:
            return enc, self.config.vision.patch_size
        pooled = pool_patch_grid(enc.tokens, enc.grid, self.config.pool_size)
        patch = tuple(p * k for p, k in zip(self.config.vision.patch_size, self.config.pool_size))
        return CaseEncoding(tokens=pooled, grid=self.config.pooled_grid), patch

    def organ_inputs(self, tokens: torch.Tensor, features: torch.Tensor | None, weights: torch.Tensor | None,
                     organ_case: torch.Tensor, organ_label: torch.Tensor | None = None,
                     voxel_rows: torch.Tensor | None = None, voxel_cols: torch.Tensor | None = None,
                     voxel_vals: torch.Tensor | None = None) -> torch.Tensor:
        """Gamma on a batch of M (encoding, organ) pairs -> (M, Ll, Dv) projector inputs.

        tokens (C, N, Dv) and features (C, Cs, d, h, w): encodings (in crop mode, of the crop boxes);
        weights (M, Ll, N): select_patches' weights; organ_case (M,): encoding row of each organ;
        masked mode: organ_label (M,) and the sparse stem-voxel weights (visual_inputs.gamma_masked)."""
        if self.config.gamma_mode == "masked":
            return gamma_masked(self.organ_pool, features, organ_label, voxel_rows, voxel_cols, voxel_vals,
                                self.config.n_organ_tokens)
        return gamma_from_weights(tokens, weights, organ_case)

    def crop_input(self, mask: torch.Tensor, volume: torch.Tensor | ModelInput) -> CropInput:
        """Crop mode: the organ's box re-sampled onto the model grid (native CT when a ModelInput keeps it)."""
        return crop_input(mask, volume, self.config.vision.img_size, self.config.crop_margin,
                          self.config.crop_min_extent)

    def organ_tokens(self, enc: CaseEncoding, mask: torch.Tensor, volume: torch.Tensor | ModelInput | None = None,
                     label: int | None = None) -> torch.Tensor:
        """tau_l: (1, Ll, K) tokens of one organ (Gamma, then P). mask: (D, H, W) bool on the model
        grid; label: its label id (needed in masked mode)."""
        tokens, _ = self.organ_selection(enc, mask, volume, label)
        return self.projector(tokens)

    def organ_logits(self, organ_visual: torch.Tensor) -> torch.Tensor:
        """Cls(tau_l): (M, Ll, K) projected organ tokens -> (M, 2) logits, class 1 = abnormal."""
        if not self.has_organ_classifier:
            raise ModelError("this model has no organ classifier (its config says organ_classifier: false)")
        return self.classifier(organ_visual)

    def _check_mask(self, mask: torch.Tensor) -> torch.Tensor:
        mask = torch.as_tensor(mask)
        if tuple(mask.shape) != self.config.vision.img_size:
            raise ValueError(f"organ mask must be {self.config.vision.img_size} on the model grid, got {tuple(mask.shape)}")
        if not bool(mask.any()):
            raise ValueError("the organ mask is empty on the model grid: no organ tokens can be taken")
        return mask.bool().cpu()

    # ----------------------------------------------------------------- text and the LLM
    def ct_placeholder(self) -> str:
        """The prompt text standing for the global tokens: "<ct>" x Lg."""
        return self.config.ct_token * self.config.n_global_tokens

    def organ_placeholder(self) -> str:
        """The prompt text standing for one organ's tokens: "<organ_feature>" x Ll."""
        return self.config.organ_token * self.config.n_organ_tokens

    def embed_text(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids -> (B, T, K) input embeddings of the LLM."""
        return self.llm.get_input_embeddings()(ids.to(self.device))

    def position_ids(self, start: int, length: int, batch: int = 1) -> torch.Tensor:
        """Positions start .. start+length-1: (3, B, T) for M-RoPE LLMs (all three equal), else (B, T)."""
        return sequential_positions(start, length, batch, self.uses_mrope, self.device)

    def embed_inputs(self, input_ids: torch.Tensor, global_visual: torch.Tensor | None = None,
                     organ_visual: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) ids with placeholders -> (B, T, K) embeddings, the visual tokens in place: every
        run of Lg "<ct>" takes the next row of global_visual (G, Lg, K), every run of Ll
        "<organ_feature>" the next row of organ_visual (S, Ll, K), in sequence order."""
        ids = input_ids.to(self.device)
        embeds = self.embed_text(ids)
        embeds = scatter_visual(embeds, ids, self.ct_token_id, global_visual, self.config.ct_token)
        return scatter_visual(embeds, ids, self.organ_token_id, organ_visual, self.config.organ_token)

    def llm_forward(self, inputs_embeds: torch.Tensor, position_ids: torch.Tensor, cache=None,
                    use_cache: bool = True, logits_to_keep: int = 0, labels: torch.Tensor | None = None,
                    attention_mask: torch.Tensor | None = None):
        """Run the LLM on embeddings; returns the HF CausalLMOutputWithPast (logits, cache, loss).
        transformers 5 names the KV cache ``cache`` (``past_key_values`` is deprecated)."""
        return self.llm(inputs_embeds=inputs_embeds, position_ids=position_ids, cache=cache,
                        use_cache=use_cache, logits_to_keep=logits_to_keep, labels=labels,
                        attention_mask=attention_mask)

    def forward(self, input_ids: torch.Tensor, global_visual: torch.Tensor | None = None,
                organ_visual: torch.Tensor | None = None, labels: torch.Tensor | None = None, start: int = 0,
                cache=None, use_cache: bool = False):
        """A pass over (B, T) ids with their visual tokens; loss = text cross-entropy when labels given."""
        embeds = self.embed_inputs(input_ids, global_visual, organ_visual)
        positions = self.position_ids(start, embeds.shape[1], embeds.shape[0])
        return self.llm_forward(embeds, positions, cache=cache, use_cache=use_cache,
                                labels=labels)


def _llm_width(llm: nn.Module) -> int:
    config = llm.config.get_text_config() if hasattr(llm.config, "get_text_config") else llm.config
    return int(config.hidden_size)


def _check_saved_llm(folder: Path, config: TumorChainConfig, llm: nn.Module, tokenizer) -> None:
    """A saved folder's parts must fit each other as saved: building the model must not resize (and so
    randomly fill) the LLM's embeddings, and the projector must output the LLM's width."""
    width = _llm_width(llm)
    if config.llm_hidden_size and config.llm_hidden_size != width:
        raise ModelError(f"{folder / 'config.json'}: llm_hidden_size is {config.llm_hidden_size}, but the language "
                         f"model in {config.llm_subfolder}/ is {width} wide")
    vocab = tokenizer.get_vocab()
    needed = max(vocab.values(), default=-1) + 1 + sum(t not in vocab for t in (config.ct_token, config.organ_token))
    rows = llm.get_input_embeddings().weight.shape[0]
    if needed > rows:
        raise ModelError(f"{folder}: the tokenizer needs {needed} token ids, the language model's embedding in "
                         f"{config.llm_subfolder}/ has {rows} rows (tokenizer and weights were not saved together)")


def _add_placeholder_tokens(tokenizer, llm: nn.Module, config: TumorChainConfig) -> tuple[int, int]:
    """Make <ct> and <organ_feature> special tokens (never split) and give them embedding rows."""
    from tokenizers import AddedToken

    wanted = [config.ct_token, config.organ_token]
    missing = [t for t in wanted if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in missing], special_tokens=True)
    ids = tokenizer.convert_tokens_to_ids(wanted)
    rows = llm.get_input_embeddings().weight.shape[0]
    if max(ids) >= rows:
        if llm.get_input_embeddings().weight.device.type == "meta":
            raise ModelError("cannot add placeholder tokens to an LLM that is not loaded")
        llm.resize_token_embeddings(max(ids) + 1, mean_resizing=False)
    return int(ids[0]), int(ids[1])
