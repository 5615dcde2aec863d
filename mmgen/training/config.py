"""Training recipes: one YAML file -> a typed :class:`RunConfig` (unknown keys rejected)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmgen.utils.checks import check_int
from mmgen.utils.config import ConfigError, from_dict, load_yaml

TASKS = (
    "tokenizer", "text_to_image", "class_to_image", "text_to_video", "text_to_audio",
    "match_scorer",
)  # fmt: skip
DATA_RESOLUTION = {"shapes": 64, "digits": 32, "moving_shapes": 64}  # fixed by the built-ins
DATA_NAMES = (*DATA_RESOLUTION, "imagefolder", "videofolder", "tones", "audiofolder")
VIDEO_DATA = ("moving_shapes", "videofolder")
AUDIO_DATA = ("tones", "audiofolder")
MEDIA_FOLDERS = ("imagefolder", "videofolder", "audiofolder")
MIXED_PRECISION = ("no", "fp16", "bf16")


@dataclass(kw_only=True)
class DataConfig:
    """Training data. ``name`` is a built-in task, ``shapes`` (64x64 RGB, prompts) or ``digits``
    (32x32 grey, class labels; the training split, ``num_samples`` is ignored), or
    ``imagefolder``: ``path`` holds images and a metadata.jsonl of ``file_name`` + ``text`` lines,
    resized and centre-cropped to ``resolution``. Bad entries are skipped with one warning that
    counts them, or raise with ``strict`` (``--strict_data``). Video: ``moving_shapes`` (64x64
    clips, prompts) or ``videofolder`` (mp4/gif files + metadata.jsonl), ``num_frames`` frames
    per clip (a tokenizer recipe trains on their frames). Audio: ``tones`` (1 s clips at 16 kHz,
    ``play C4 E4`` prompts) or ``audiofolder`` (wav/flac/mp3 files + metadata.jsonl), mono,
    resampled to the tokenizer's rate, cut or padded with silence to ``seconds``.

    Prompt mixes (training sets only; the evaluations keep the task's even split):
    ``two_object_weight`` k (moving_shapes) draws two-object prompts k times as often as
    one-object ones (1: even); ``family_weights`` (shapes; ``{family: int >= 1}``, a family left
    out weighs 1, unset: even) draws each prompt family as often as its weight. ``near_miss``
    (shapes) draws each prompt's near miss (``mmgen.data.near_miss``) instead of its scene: the
    hard negatives a ``match_scorer`` run renders for itself."""

    name: str = "shapes"
    num_samples: int = 20000
    seed: int = 0
    resolution: int = 64
    path: str | None = None
    strict: bool = False
    num_frames: int = 12
    two_object_weight: int = 1
    family_weights: dict[str, int] | None = None
    seconds: float = 1.0
    near_miss: bool = False

    def __post_init__(self):
        if self.name not in DATA_NAMES:
            raise ConfigError(f"data.name must be one of {list(DATA_NAMES)}, got {self.name!r}")
        if self.name in DATA_RESOLUTION and self.resolution != DATA_RESOLUTION[self.name]:
            raise ConfigError(
                f"data.resolution must be {DATA_RESOLUTION[self.name]} for {self.name}, "
                f"got {self.resolution}"
            )
        if self.resolution < 8:
            raise ConfigError(f"data.resolution must be >= 8, got {self.resolution}")
        if self.name in MEDIA_FOLDERS and not self.path:
            raise ConfigError(
                f"data.name {self.name} needs data.path: a folder with metadata.jsonl"
            )
        if self.num_frames < 1:
            raise ConfigError(f"data.num_frames must be >= 1, got {self.num_frames}")
        if self.num_samples < 1:
            raise ConfigError(f"data.num_samples must be >= 1, got {self.num_samples}")
        check_int("data.two_object_weight", self.two_object_weight, 1, ConfigError)
        if self.two_object_weight != 1 and self.name != "moving_shapes":
            raise ConfigError(f"data.two_object_weight is for moving_shapes, not {self.name}")
        if self.family_weights is not None:
            from mmgen.data.shapes import check_family_weights

            if self.name != "shapes":
                raise ConfigError(f"data.family_weights is for shapes, not {self.name}")
            try:
                check_family_weights(self.family_weights)
            except ValueError as error:
                raise ConfigError(f"data.{error}") from None
        if not self.seconds > 0:
            raise ConfigError(f"data.seconds must be > 0, got {self.seconds}")
        if self.near_miss and self.name != "shapes":
            raise ConfigError(f"data.near_miss is for shapes, not {self.name}")
        if self.name == "tones" and self.seconds != 1.0:
            raise ConfigError(f"data.seconds is 1.0 for tones (its clips), got {self.seconds}")


@dataclass(kw_only=True)
class TrainingConfig:
    """Optimisation and bookkeeping (flag names follow diffusers' training scripts).

    ``ema_decay`` > 0 keeps an EMA of the weights for validation and export; ``compile`` runs
    the model through ``torch.compile`` (accelerate's ``dynamo_backend="inductor"``), and the
    tokenizer's encoder when it encodes the data set (a cache miss, ``load_encoded_data``);
    ``deterministic`` turns on ``torch.use_deterministic_algorithms`` for the run (multi-threaded
    CPU backward of the convolutional VQ is otherwise not bitwise repeatable).
    ``group_loss_power`` p weighs each target of a generation group holding n targets by
    n^-p in the head's loss (0, the default: every target alike; 0.5 moves a next-scale
    loss towards its coarse maps, 1 gives every group the same share). A target is a code of
    a categorical head, a row of latents of a flow head. ``first_group_weight`` w multiplies
    the weights of the first generation group's targets by w (1, the default: no change; a
    next-frame clip's first frame, made from the prompt alone, is harder than the frames that
    follow it and only one group of many; the order's ``first_output_groups`` say how many
    groups make it, e.g. frame 0 and its first-frame scales). ``context_noise`` s > 0 adds
    Gaussian noise to the generated rows a sequence is fed (noise augmentation of the
    context: a next-frame clip's previous frames), its standard deviation drawn per sample
    uniformly in [0, s], so that at generation the model has seen imperfect context like its
    own samples; over codes (next-token, token-shuffle) the draw is instead the probability
    of replacing each fed code by a random one (0, the default: off; orders that implement
    it only: next-frame, next-token, token-shuffle).
    ``first_frame_batch`` n > 0 (text-to-video) adds n one-frame sequences to every batch (the
    prompt, frame 0's scales and frame 0: ~35 rows against a clip's ~211), their loss added to
    the clips': a clip's frame 0, drawn from the prompt alone, is the hardest group and one of
    many in a clip, and a one-frame sequence is the same prefix of the group-causal sequence,
    so it trains that group alone at a sixth of the cost. They are drawn from the training
    clips' first frames, or with ``first_frame_samples`` N from N one-frame clips of the same
    procedural data (``data.num_frames: 1``), encoded once into the shared cache."""

    batch_size: int = 32
    learning_rate: float = 3e-4
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    lr_schedule: str = "cosine"
    warmup_steps: int = 100
    max_steps: int = 1000
    gradient_accumulation_steps: int = 1
    max_grad_norm: float = 1.0
    mixed_precision: str = "no"
    checkpointing_steps: int = 500
    checkpoints_total_limit: int | None = None
    validation_steps: int = 500
    log_steps: int = 20
    condition_dropout: float = 0.1
    ema_decay: float = 0.0
    compile: bool = False
    deterministic: bool = False
    group_loss_power: float = 0.0
    first_group_weight: float = 1.0
    context_noise: float = 0.0
    first_frame_batch: int = 0
    first_frame_samples: int | None = None

    def __post_init__(self):
        for name in ("batch_size", "max_steps", "gradient_accumulation_steps", "log_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"training.{name} must be >= 1, got {getattr(self, name)}")
        if self.mixed_precision is False:  # YAML 1.1 reads a bare `no` as false
            self.mixed_precision = "no"
        if self.mixed_precision not in MIXED_PRECISION:
            raise ConfigError(
                f"training.mixed_precision must be one of {list(MIXED_PRECISION)}, "
                f"got {self.mixed_precision!r}"
            )
        if self.lr_schedule not in ("cosine", "constant"):
            raise ConfigError("training.lr_schedule must be 'cosine' or 'constant'")
        if not 0 <= self.condition_dropout < 1:
            raise ConfigError("training.condition_dropout must be in [0, 1)")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(
                f"training.ema_decay must be in [0, 1) (0 = off), got {self.ema_decay}"
            )
        power = self.group_loss_power
        if isinstance(power, bool) or not isinstance(power, (int, float)) or not 0 <= power <= 1:
            raise ConfigError(
                f"training.group_loss_power must be a number in [0, 1], got {power!r}"
            )
        first = self.first_group_weight
        if isinstance(first, bool) or not isinstance(first, (int, float)) or not first > 0:
            raise ConfigError(f"training.first_group_weight must be a number > 0, got {first!r}")
        noise = self.context_noise
        if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not noise >= 0:
            raise ConfigError(f"training.context_noise must be a number >= 0, got {noise!r}")
        check_int("training.first_frame_batch", self.first_frame_batch, 0, ConfigError)
        if self.first_frame_samples is not None:
            check_int("training.first_frame_samples", self.first_frame_samples, 1, ConfigError)
            if not self.first_frame_batch:
                raise ConfigError("training.first_frame_samples needs training.first_frame_batch")


@dataclass(kw_only=True)
class ScorerConfig:
    """What a ``match_scorer`` run trains on besides its positives (the data set's images with
    their own prompts) and their word-swapped prompts.

    Attributes:
        near_misses: the first N training prompts each get a rendered near miss
            (``data.near_miss``, shapes only) as a further negative; 0 trains on word swaps
            only.
        held_out: examples (of those with near misses, when there are) kept out of training
            and scored at each validation.
        near_miss_prompts: each image also meets a near-miss prompt
            (``mmgen.data.near_miss.near_miss_prompt``: one change away from its scene, a
            relation stated wrongly half the time on relation prompts) as a further negative;
            shapes only, drawn afresh at every step, no rendering or encoding.
        near_misses_from_data: each prompt also meets another training image, one drawn for
            a near-miss prompt of it (a scene one change away: what a candidate that misses
            looks like), as a further negative; shapes only, drawn afresh at every step from
            the data set's own images: no rendering or encoding.
    """

    near_misses: int = 0
    held_out: int = 500
    near_miss_prompts: bool = False
    near_misses_from_data: bool = False

    def __post_init__(self):
        check_int("scorer.near_misses", self.near_misses, 0, ConfigError)
        check_int("scorer.held_out", self.held_out, 1, ConfigError)


@dataclass(kw_only=True)
class RunConfig:
    """A whole recipe.

    Args:
        task: ``tokenizer`` (train an image, video-frame or audio tokenizer),
            ``text_to_image``, ``class_to_image``, ``text_to_video``, ``text_to_audio`` or
            ``match_scorer`` (a prompt-image scorer that reranks a text-to-image pipeline's
            candidates).
        output_dir: where checkpoints, samples, logs and the final model go.
        seed: seeds model init, data order and every training-time random draw.
        data: :class:`DataConfig`.
        model: architecture fields for the task's model (``preset`` picks a named one).
        model_class: the tokenizer class a ``tokenizer`` task trains: ``VQModel`` (default),
            ``MultiScaleVQModel`` (VAR) or ``module:ClassName``.
        tokenizer: folder of a trained image tokenizer (text_to_image, class_to_image), or
            a built-in model's, e.g. ``shapes-t2i/vq``.
        init_from: a component folder (or built-in component, e.g. ``shapes-t2i/vq``) whose
            tensors start the trained model wherever their names and shapes match (the others
            keep their seeded init); used at a fresh start, not on resume. When the folder
            sits in a pipeline with a learned ``tokenizer.json`` of the recipe's kind and
            ``text_max_length`` that knows every caption word, the run reads prompts with that
            vocabulary, so that the copied condition embeddings keep their words.
        order: the generation order, ``{"name": ..., **options}``: ``next_token`` (default),
            ``next_scale`` (a multi-scale tokenizer), ``token_shuffle`` (option ``window``) or
            ``module:ClassName`` for an order defined outside mmgen.
        text_tokenizer: how prompts become ids: ``{"kind": "bytes"}`` (UTF-8 bytes, the
            default), ``{"kind": "word"}`` (a word-level vocabulary learned from the run's
            captions by the training command, saved as the pipeline's ``tokenizer.json``) or
            ``{"kind": "bpe", "vocab_size": N}`` (byte-pair merges learned the same way).
        text_max_length: text tokens per prompt (BOS and EOS included).
        pipeline: ``match_scorer`` only: the text-to-image pipeline folder (or built-in name)
            whose prompts and codes the scorer reads; the run exports a copy of it with the
            scorer added and ``sampling`` (e.g. ``num_candidates``) over its defaults.
        scorer: ``match_scorer`` only: :class:`ScorerConfig`.
        cache_dir: where encoded training data (codes and conditions) is kept between runs,
            keyed by the tokenizer's weights and the data spec (``mmgen.training.encoded_data``);
            None is ``$MMGEN_CACHE`` or ``~/.cache/mmgen``.
        training: :class:`TrainingConfig`.
        sampling: default sampling knobs saved with the pipeline and used for validation.
        validation_prompts: prompts drawn at each validation (4 images each).
        validation_num_prompts: on ``shapes``, 0 validates on ``validation_prompts``; N > 0
            scores N prompts drawn like ``mmgen eval shapes --seed 1`` instead (one image
            each: a steadier learning curve, per-family rates, the report under
            ``validations/``).
        report_to: ``tensorboard`` or None.
    """

    task: str
    output_dir: str
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: dict[str, Any] = field(default_factory=dict)
    model_class: str = "VQModel"
    tokenizer: str | None = None
    init_from: str | None = None
    order: dict[str, Any] = field(default_factory=lambda: {"name": "next_token"})
    text_tokenizer: dict[str, Any] = field(default_factory=lambda: {"kind": "bytes"})
    text_max_length: int = 64
    pipeline: str | None = None
    scorer: ScorerConfig = field(default_factory=ScorerConfig)
    cache_dir: str | None = None
    training: TrainingConfig = field(default_factory=TrainingConfig)
    sampling: dict[str, Any] = field(default_factory=dict)
    validation_prompts: list[str] = field(
        default_factory=lambda: [
            "a red circle",
            "a blue square and a yellow triangle",
            "three green circles",
            "a purple square to the left of a black circle",
        ]
    )
    validation_num_prompts: int = 0
    report_to: str | None = None

    def __post_init__(self):
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {list(TASKS)}, got {self.task!r}")
        if self.task == "match_scorer" and not self.pipeline:
            raise ConfigError("task match_scorer needs 'pipeline': the text-to-image pipeline "
                              "folder whose candidates it reranks")  # fmt: skip
        if self.data.near_miss:  # images that do not match their prompts: never training data
            raise ConfigError("data.near_miss is drawn by a match_scorer run for its negatives "
                              "(scorer.near_misses), not set in a recipe")  # fmt: skip
        if self.pipeline and self.task != "match_scorer":
            raise ConfigError(f"'pipeline' is for task match_scorer, not {self.task}")
        if self.task not in ("tokenizer", "match_scorer") and not self.tokenizer:
            raise ConfigError(f"task {self.task} needs 'tokenizer': a trained VQ folder")
        expected = {
            "text_to_image": ("shapes", "imagefolder"),
            "class_to_image": ("digits",),
            "text_to_video": VIDEO_DATA,
            "text_to_audio": AUDIO_DATA,
            "match_scorer": ("shapes", "imagefolder"),
        }
        allowed = expected.get(self.task)
        if allowed and self.data.name not in allowed:
            raise ConfigError(
                f"task {self.task} trains on data.name {' or '.join(map(repr, allowed))}"
            )
        if self.training.first_frame_batch and self.task != "text_to_video":
            raise ConfigError("training.first_frame_batch is for text_to_video (clips' first "
                              f"frames), not task {self.task}")  # fmt: skip
        if self.training.first_frame_samples and self.data.name != "moving_shapes":
            raise ConfigError("training.first_frame_samples draws one-frame clips of procedural "
                              f"data (moving_shapes), not data.name {self.data.name}")  # fmt: skip
        kind = self.text_tokenizer.get("kind")
        allowed_fields = {"bytes": {"kind"}, "word": {"kind"}, "bpe": {"kind", "vocab_size"}}
        if kind not in allowed_fields:
            raise ConfigError(
                f"text_tokenizer.kind must be one of {list(allowed_fields)}, got {kind!r}"
            )
        unknown = set(self.text_tokenizer) - allowed_fields[kind]
        if unknown:
            raise ConfigError(f"text_tokenizer: unknown key(s) {sorted(unknown)} for kind {kind}")
        if self.validation_num_prompts < 0:
            raise ConfigError(
                f"validation_num_prompts must be >= 0, got {self.validation_num_prompts}"
            )
        if self.report_to not in (None, "tensorboard"):
            raise ConfigError(f"report_to must be 'tensorboard' or null, got {self.report_to!r}")


def recipes_dir() -> Path:
    """The shipped recipes: ``mmgen/recipes`` in an installed wheel, ``configs/`` in a checkout."""
    import mmgen

    package = Path(mmgen.__file__).resolve().parent
    for candidate in (package / "recipes", package.parent / "configs"):
        if candidate.is_dir():
            return candidate
    return package / "recipes"


def resolve_recipe(path: str | Path) -> Path:
    """A recipe file as given, else a shipped recipe by name: ``shapes_t2i``,
    ``orders/next_scale`` or ``configs/shapes_vq.yaml`` (the README's paths work from any
    folder after ``pip install``).

    Raises:
        FileNotFoundError: naming the shipped recipes when neither exists.
    """
    path = Path(path)
    if path.is_file() or path.is_absolute():
        return path
    relative = Path(*path.parts[1:]) if path.parts[:1] == ("configs",) else path
    shipped = recipes_dir() / (relative if relative.suffix else relative.with_suffix(".yaml"))
    if shipped.is_file():
        return shipped
    root = recipes_dir()
    names = sorted(
        str(p.relative_to(root).with_suffix(""))
        for p in root.rglob("*.yaml")
        if p.parent.name != "accelerate"  # accelerate's launch configs, not recipes
    )
    raise FileNotFoundError(f"config file not found: {path} (shipped recipes: {', '.join(names)})")


#: a recipe's key naming the recipe it extends
BASE_KEY = "base"


def merge_recipes(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """``child``'s values over ``base``'s: mappings merge key by key (recursively), every other
    value (lists, scalars, ``null``) replaces the base's."""
    merged = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_recipes(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_recipe(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A recipe's mapping with its ``base:`` merged in (:func:`merge_recipes`, recursively).

    ``base`` is a path relative to the recipe's folder, or a shipped recipe's name
    (``shapes_t2i_scale``): a stage or variant recipe states only what it changes.

    Raises:
        ConfigError: ``base`` is not a string, or the recipes extend each other in a cycle.
        FileNotFoundError: the base recipe does not exist.
    """
    path = resolve_recipe(path).resolve()
    if path in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, path))
        raise ConfigError(f"recipes extend each other in a cycle: {cycle}")
    data = load_yaml(path)
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: {BASE_KEY} must be a recipe path or name, got {base!r}")
    local = path.parent / base
    base_data = load_recipe(local if local.is_file() else base, (*_chain, path))
    return merge_recipes(base_data, data)


def load_run_config(path: str | Path, **overrides: Any) -> RunConfig:
    """Read a recipe YAML (a path, or a shipped recipe's name: :func:`resolve_recipe`; its
    ``base:`` merged in: :func:`load_recipe`); ``overrides`` replace top-level or
    ``training.*`` values.

    An override key ``"training.max_steps"`` sets a nested value.
    """
    data = load_recipe(path)
    for key, value in overrides.items():
        if value is None:
            continue
        target = data
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    try:
        return from_dict(RunConfig, data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
