"""Shared machinery of the image pipelines: condition tokens -> group loop (any order) ->
tokenizer decoder. Components are named in ``model_index.json`` and resolved like diffusers
does, so a new order or tokenizer needs no edit here."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch

from mmgen.generation.guidance import check_guidance_args
from mmgen.generation.logits_processors import check_sampling_args
from mmgen.generation.loop import SamplingConfig, generate_codes
from mmgen.models.match_scorer import condition_id_map
from mmgen.models.transformer import ARTransformer
from mmgen.orders.base import Order, build_order
from mmgen.pipelines.outputs import OUTPUT_TYPES, ImagePipelineOutput, to_output_type
from mmgen.pipelines.pipeline_utils import PipelineSurface
from mmgen.registry import class_spec, resolve_class
from mmgen.utils.checks import check_int
from mmgen.utils.config import ConfigError, from_dict, to_dict
from mmgen.utils.serialization import (
    CheckpointError,
    load_component,
    read_json,
    save_module,
    write_json,
)

MODEL_INDEX = "model_index.json"
TRAINING_CONFIG = "training_config.yaml"


class ARImagePipeline(PipelineSurface):
    """Base of :class:`TextToImagePipeline` and :class:`ClassToImagePipeline`.

    A condition segment (prompt bytes or one class token) is the first group; the image codes
    follow in the pipeline's order (next-token, next-scale, token-shuffle or a user's).

    Args:
        transformer: the :class:`ARTransformer`.
        vq: the image tokenizer (``VQModel``, ``MultiScaleVQModel``, or any module with
            ``token_layout``, ``encode`` and ``decode``).
        condition_tokenizer: turns conditions into ids (``ByteTokenizer``,
            ``TrainedTextTokenizer`` or ``ClassLabelTokenizer``).
        image_size: output height and width in pixels.
        sampling: default sampling knobs used when ``__call__`` leaves them out.
        training_config: the recipe that trained the model, saved alongside.
        order: the generation order's config (``{"name": "next_scale"}``...) or an
            :class:`Order` (its config is used); None is
            next-token.
        scorer: an optional prompt-image match scorer (``mmgen.models.match_scorer``): with
            ``num_candidates`` N > 1 each output image is the best of N drawn (reranking).
        scorer_vq: the image tokenizer whose codes the scorer reads (one grid of codes), when
            it is not the pipeline's own: a scorer trained for one pipeline then reranks any
            other's pictures (a next-scale or continuous order's included), re-encoded from
            pixels. The scorer reads the pipeline's prompt ids through its own vocabulary
            (``condition_vocab``), word for word.
    """

    #: key of the condition tokenizer's config in model_index.json
    condition_key: ClassVar[str]
    #: key of ``image_size`` in model_index.json (an audio pipeline's clip length in samples)
    size_key: ClassVar[str] = "image_size"
    #: components a pipeline may lack (saved, indexed and loaded only when present)
    optional_components: ClassVar[tuple[str, ...]] = ("scorer", "scorer_vq")

    def __init__(
        self,
        transformer: ARTransformer,
        vq,
        condition_tokenizer,
        *,
        image_size: int,
        sampling: SamplingConfig | None = None,
        training_config: dict | None = None,
        order: dict | Order | None = None,
        scorer=None,
        scorer_vq=None,
    ):
        self.transformer = transformer.eval()
        self.vq = vq.eval()
        self.condition_tokenizer = condition_tokenizer
        self.image_size = image_size
        self.sampling = sampling or SamplingConfig()
        self.training_config = training_config
        self.decoder = None  # set by enable_compile()
        if isinstance(order, Order):  # e.g. from another pipeline's components
            order = order.config()
        self.order: Order = build_order(
            order,
            vq,
            image_size,
            condition_tokenizer.max_length,
            flat_positions=transformer.uses_flat_positions,
        )
        c = transformer.config
        if c.condition_vocab_size != condition_tokenizer.vocab_size:
            raise ValueError(
                f"transformer condition_vocab_size {c.condition_vocab_size} does not match the "
                f"condition tokenizer's vocab_size {condition_tokenizer.vocab_size}"
            )
        self.scorer_vq = None if scorer_vq is None else scorer_vq.eval()
        self.scorer_id_map = None  # set by check_scorer
        if scorer_vq is not None and scorer is None:
            raise ValueError("scorer_vq is the tokenizer a scorer reads; got no scorer")
        self.scorer = None if scorer is None else self.check_scorer(scorer).eval()
        for part, wanted in (("input", self.order.input_config()),
                             ("head", self.order.head_config())):  # fmt: skip
            have = getattr(c, part)
            if any(have.get(k) != v for k, v in wanted.items()):
                raise ValueError(
                    f"transformer {part} {have} does not fit the {self.order.name} order over "
                    f"this tokenizer (needs {wanted})"
                )

    def check_scorer(self, scorer):
        """``scorer`` when it reads this pipeline's prompts and the codes of its image
        tokenizer (:attr:`scorer_layout`), else ValueError. Sets :attr:`scorer_id_map`: this
        pipeline's condition ids -> the scorer's (None: the same ids)."""
        c, layout = scorer.config, self.scorer_layout
        tokenizer = self.condition_tokenizer
        reads_codes = (
            layout.scales is None and layout.frames is None and not layout.is_continuous
            and tuple(layout.grid) == tuple(c.grid) and layout.codebook_size == c.num_codes
        )  # fmt: skip
        if not reads_codes:
            raise ValueError(
                f"the scorer reads a {c.grid} map of {c.num_codes} codes; its tokenizer here "
                f"gives {layout} (pass the tokenizer it was trained on as scorer_vq)"
            )
        self.scorer_id_map = condition_id_map(tokenizer, c)
        return scorer

    @property
    def scorer_layout(self):
        """The token layout of the codes the scorer reads: ``scorer_vq``'s, else the order's."""
        if self.scorer_vq is None:
            return self.order.token_layout
        return self.scorer_vq.token_layout(self.image_size, self.image_size)

    @property
    def layout(self):
        """The order's sequence layout."""
        return self.order.layout

    #: the condition tokenizer class of index entries that name none (folders written before
    #: learned text tokenizers): a short name of ``mmgen.registry``
    default_condition_tokenizer: ClassVar[str]

    @classmethod
    def load_condition_tokenizer(cls, entry: dict, folder: Path):
        """The condition tokenizer that ``model_index.json``'s entry describes: its
        ``_class_name`` (default :attr:`default_condition_tokenizer`) built from a ``file`` in
        the pipeline folder (``tokenizer.json``) when the entry names one, else from the
        entry's other fields as keyword arguments."""
        fields = dict(entry)
        spec = fields.pop("_class_name", cls.default_condition_tokenizer)
        tokenizer_class = resolve_class(spec, what="condition tokenizer")
        if "file" not in fields:
            return tokenizer_class(**fields)
        tokenizer = tokenizer_class.from_file(folder / fields["file"])
        if "max_length" in fields and tokenizer.max_length != fields["max_length"]:
            raise ValueError(
                f"{fields['file']} pads to {tokenizer.max_length} tokens, the index says "
                f"{fields['max_length']}"
            )
        return tokenizer

    # ------------------------------------------------------------------ devices and files

    def component_names(self) -> dict[str, str]:
        return {
            "transformer": "transformer",
            "vq": "vq",
            "condition_tokenizer": "condition_tokenizer",
            "order": "order",
            "scorer": "scorer",
            "scorer_vq": "scorer_vq",
        }

    @property
    def vq_device(self) -> torch.device:
        return next(self.vq.parameters()).device

    def after_move(self) -> None:
        if self.decoder is not None:  # its caches and graphs belong to the old device
            self.enable_compile(self.decoder.mode)

    def enable_compile(self, mode: str | None = None):
        """Decode each group with a compiled static-shape step (``torch.compile``; CUDA graphs
        with the default ``mode`` on GPUs) against caches that persist across calls. The first
        call compiles (seconds to a minute); later ones replay. Returns self."""
        from mmgen.generation.compiled import CompiledDecoder

        self.decoder = CompiledDecoder(self.transformer, mode)
        return self

    def disable_compile(self):
        """Back to the eager group loop; returns self."""
        self.decoder = None
        return self

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write ``model_index.json``, ``transformer/``, ``vq/`` (safetensors + JSON config;
        ``scorer/`` and ``scorer_vq/`` when the pipeline has them), a learned text tokenizer's
        ``tokenizer.json`` and the training recipe as ``training_config.yaml``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_module(self.transformer, folder / "transformer")
        save_module(self.vq, folder / "vq")
        for name in self.optional_components:
            if getattr(self, name) is not None:
                save_module(getattr(self, name), folder / name)
        if "file" in self.condition_tokenizer.config:  # a learned vocabulary: tokenizer.json
            self.condition_tokenizer.save(folder / self.condition_tokenizer.config["file"])
        index = self.model_index()
        write_json(folder / MODEL_INDEX, index)
        if self.training_config is not None:
            import yaml

            (folder / TRAINING_CONFIG).write_text(yaml.safe_dump(self.training_config))
        return folder

    def model_index(self) -> dict[str, Any]:
        return {
            "_class_name": type(self).__name__,
            self.size_key: self.image_size,
            self.condition_key: {
                "_class_name": class_spec(type(self.condition_tokenizer)),
                **self.condition_tokenizer.config,
            },
            "order": self.order.config(),
            "sampling": to_dict(self.sampling),
            "transformer": class_spec(type(self.transformer)),
            "vq": class_spec(type(self.vq)),
            **{name: class_spec(type(getattr(self, name))) for name in self.optional_components
               if getattr(self, name) is not None},
        }  # fmt: skip

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, torch_dtype: torch.dtype | None = None, device=None
    ):
        """Load a built-in model by name (e.g. ``"shapes-t2i"``) or a folder written by
        :meth:`save_pretrained` (no network, no pickle).

        Raises:
            CheckpointError: naming the file and the problem when something is missing,
                corrupt or inconsistent.
        """
        from mmgen.builtin import component_folder, resolve_model_path

        try:
            folder = resolve_model_path(path)
        except FileNotFoundError as err:
            raise CheckpointError(f"{path}: pipeline folder not found ({err})") from None
        index = read_json(folder / MODEL_INDEX)
        found = index.get("_class_name")
        try:
            pipeline_class = resolve_class(found, what="pipeline class")
        except ValueError as err:
            raise CheckpointError(f"{folder / MODEL_INDEX}: {err}") from None
        if not issubclass(pipeline_class, cls):
            raise CheckpointError(f"{folder / MODEL_INDEX}: holds a {found!r}, not {cls.__name__}")
        cls = pipeline_class
        training_config = None
        if (folder / TRAINING_CONFIG).is_file():
            import yaml

            training_config = yaml.safe_load((folder / TRAINING_CONFIG).read_text())
        try:
            transformer, vq = (
                load_component(component_folder(folder, name), torch_dtype=torch_dtype,
                               spec=index[name])
                for name in ("transformer", "vq")
            )  # fmt: skip
            scorer, scorer_vq = (
                load_component(component_folder(folder, name), torch_dtype=torch_dtype,
                               spec=index[name]) if name in index else None
                for name in cls.optional_components
            )  # fmt: skip
            pipe = cls(
                transformer,
                vq,
                cls.load_condition_tokenizer(index[cls.condition_key], folder),
                image_size=int(index[cls.size_key]),
                sampling=from_dict(SamplingConfig, index.get("sampling", {})),
                training_config=training_config,
                order=index.get("order"),
                scorer=scorer,
                scorer_vq=scorer_vq,
            )
        except (KeyError, TypeError, ValueError, ConfigError, FileNotFoundError) as err:
            raise CheckpointError(
                f"{folder / MODEL_INDEX}: inconsistent pipeline ({err})"
            ) from None
        return pipe.to(device) if device is not None else pipe

    # ------------------------------------------------------------------ generation

    @staticmethod
    def check_common_args(num_images: int, output_type: str, generator, count_name: str) -> None:
        if isinstance(num_images, bool) or not isinstance(num_images, int):
            raise TypeError(f"{count_name} must be an int, got {type(num_images).__name__}")
        if num_images < 1:
            raise ValueError(f"{count_name} must be >= 1, got {num_images}")
        if output_type not in (*OUTPUT_TYPES, "latent"):
            raise ValueError(
                f"output_type must be one of {[*OUTPUT_TYPES, 'latent']}, got {output_type!r}"
            )
        generators = generator if isinstance(generator, (list, tuple)) else [generator]
        if generator is None or all(isinstance(g, torch.Generator) for g in generators):
            return
        got = type(generator).__name__
        if isinstance(generator, (list, tuple)):
            got = f"a list holding {sorted({type(g).__name__ for g in generators})}"
        raise TypeError(
            f"generator must be a torch.Generator or a list of them (one per image), got {got}; "
            "for a seed write generator=torch.Generator().manual_seed(0)"
        )

    @staticmethod
    def check_generator_count(generator, num_images: int) -> None:
        """A list of generators gives one per output image (diffusers' convention)."""
        if isinstance(generator, (list, tuple)) and len(generator) != num_images:
            raise ValueError(
                f"got {len(generator)} generators for {num_images} images: pass one per "
                "image (prompts x num_images_per_prompt) or a single torch.Generator"
            )

    def resolve_sampling(self, **overrides: Any) -> SamplingConfig:
        """The saved defaults with the given (non-None) knobs replaced, validated."""
        d = self.sampling
        values = {name: getattr(d, name) for name in d.__dataclass_fields__}
        values.update({k: v for k, v in overrides.items() if v is not None})
        sampling = SamplingConfig(**values)
        check_guidance_args(
            sampling.guidance_scale, sampling.guidance_schedule, sampling.guidance_cutoff
        )
        check_sampling_args(sampling.temperature, sampling.top_k, sampling.top_p)
        steps = sampling.num_inference_steps
        check_int("num_inference_steps", steps)
        check_int("num_candidates", sampling.num_candidates, 1)
        if sampling.num_candidates > 1 and self.scorer is None:
            raise ValueError(
                f"num_candidates={sampling.num_candidates} keeps the best of several images by "
                "the pipeline's scorer, and this pipeline has none (train one: task "
                "match_scorer); use num_candidates=1"
            )
        slope = sampling.flexrope_slope
        if isinstance(slope, bool) or not isinstance(slope, (int, float)) or not slope >= 0:
            raise ValueError(f"flexrope_slope must be a number >= 0, got {slope!r}")
        if slope and self.order.layout.frame_ids is None:
            raise ValueError(f"flexrope_slope needs a video order; this pipeline's order is "
                             f"{self.order.name}")  # fmt: skip
        return sampling

    def generate_tokens(
        self,
        condition_ids: torch.Tensor,
        uncond_ids: torch.Tensor,
        sampling: SamplingConfig,
        *,
        generator: torch.Generator | list[torch.Generator] | None,
        use_cache: bool,
        show_progress: bool | None,
        callback_on_step_end=None,
        order: Order | None = None,
        given: torch.Tensor | None = None,
        progress_label: str = "groups",
    ) -> torch.Tensor:
        """Condition ids (B, T) -> the flat tokens (B, N) or (B, N, C) of ``order`` (default the
        pipeline's), continuing ``given`` samples of the first groups when passed.
        ``show_progress`` None shows the bar unless :meth:`set_progress_bar_config` disabled
        it."""
        self.check_generator_count(generator, condition_ids.shape[0])
        order = self.order if order is None else order
        bar = None
        if show_progress or show_progress is None:
            bar = self.progress_bar(total=order.num_groups, desc=progress_label)

        def step_end(step: int, num_groups: int, state) -> None:
            if bar is not None:
                bar.update(1)
            if callback_on_step_end is not None:
                callback_on_step_end(step, num_groups, state)

        try:
            return generate_codes(
                self.transformer,
                order,
                condition_ids,
                uncond_ids,
                sampling,
                generator=generator,
                use_cache=use_cache,
                callback=step_end,
                decoder=self.decoder,
                given=given,
            )  # (B, N) or (B, N, C)
        finally:
            if bar is not None:
                bar.close()

    def generate_images(
        self,
        condition_ids: torch.Tensor,
        uncond_ids: torch.Tensor,
        sampling: SamplingConfig,
        *,
        generator: torch.Generator | list[torch.Generator] | None,
        use_cache: bool,
        show_progress: bool | None,
        output_type: str,
        return_dict: bool,
        callback_on_step_end=None,
    ) -> ImagePipelineOutput | tuple[Any]:
        """Condition ids (B, T) -> decoded images in the requested output type (``"latent"``:
        the (B, N) codes, not decoded). With ``sampling.num_candidates`` K > 1 the group loop
        draws K images per output (its callback sees B * K rows) and the scorer keeps one."""
        generate = self.generate_tokens
        if sampling.num_candidates > 1:
            generate = self.generate_best_of_candidates
        codes = generate(
            condition_ids,
            uncond_ids,
            sampling,
            generator=generator,
            use_cache=use_cache,
            show_progress=show_progress,
            callback_on_step_end=callback_on_step_end,
        )
        if output_type == "latent":
            images = codes
        else:
            images = to_output_type(self.decode_codes(codes), output_type)  # from (B, C, H, W)
        return ImagePipelineOutput(images=images) if return_dict else (images,)

    def generate_best_of_candidates(
        self,
        condition_ids: torch.Tensor,
        uncond_ids: torch.Tensor,
        sampling,
        *,
        generator,
        **loop_options,
    ) -> torch.Tensor:
        """Flat codes (B, N): for each row, ``sampling.num_candidates`` K candidates drawn by
        :meth:`generate_tokens` and the one the scorer rates highest. A list of generators
        (one per image) seeds each image's K candidates from its own generator, so image i
        still depends on ``generator[i]`` only."""
        self.check_generator_count(generator, condition_ids.shape[0])
        K = sampling.num_candidates
        if isinstance(generator, (list, tuple)):  # K child generators per image, from its own
            generator = [
                torch.Generator(g.device).manual_seed(int(seed))
                for g in generator
                for seed in torch.randint(2**62, (K,), generator=g)
            ]
        condition_ids_K = condition_ids.repeat_interleave(K, 0)  # (B * K, T)
        codes = self.generate_tokens(
            condition_ids_K,
            uncond_ids.repeat_interleave(K, 0),
            sampling,
            generator=generator,
            **loop_options,
        )  # (B * K, N)
        scorer_device = next(self.scorer.parameters()).device
        with torch.no_grad():
            seen = self.reencode_codes(codes)  # (B * K, n): what the scorer was trained on
            if self.scorer_id_map is not None:  # its own vocabulary's ids
                condition_ids_K = self.scorer_id_map[condition_ids_K.cpu()]
            scores = self.scorer(condition_ids_K.to(scorer_device), seen.to(scorer_device))
        best = scores.view(-1, K).argmax(1).to(codes.device)  # (B,)
        return codes.view(-1, K, codes.shape[1])[torch.arange(len(best)), best]  # (B, N)

    def reencode_codes(self, codes_BN: torch.Tensor) -> torch.Tensor:
        """Codes (B, N) -> the scorer's tokenizer's codes (B, n) of the pictures they decode
        to (``scorer_vq``, else the pipeline's own), pixels rounded to 8 bits as the output
        images are. Sampled codes are not what the encoder
        gives for their own picture (about 46% of ``shapes-t2i-shuffle``'s codes change), and
        a scorer trained on encoded pictures picks far better from the re-encoded ones (0.905
        against 0.863 of picks passing, 400 prompts x 8 candidates)."""
        images = self.decode_codes(codes_BN).float().clamp(-1, 1)  # (B, C, H, W)
        images = ((images + 1) * 127.5).round() / 127.5 - 1  # as uint8 pixels
        reader = self.vq if self.scorer_vq is None else self.scorer_vq
        images = images.to(next(reader.parameters()).device)
        return self.scorer_layout.flatten(reader.encode(images)).long()

    def decode_codes(self, codes_BN: torch.Tensor) -> torch.Tensor:
        """Flat tokens (codes (B, N) or latents (B, N, C)) -> images (B, C, H, W) in [-1, 1]
        through the tokenizer."""
        return self.vq.decode(self.order.token_layout.unflatten(codes_BN.to(self.vq_device)))
