"""Built-in models shipped inside the package, loaded by name with no network."""

from __future__ import annotations

from pathlib import Path

BUILTIN_DIR = Path(__file__).resolve().parent

#: name -> (folder under mmgen/builtin, one-line description)
BUILTIN_MODELS: dict[str, str] = {
    "shapes-t2i": "text-to-image on the built-in shapes task, 64x64 (Token-Shuffle s=2 over VQ "
    "codes, word prompts, each image the best of 16 by a captioning scorer; trained on 2 CPU "
    "cores)",
    "digits-c2i": "class-to-image on scikit-learn's handwritten digits, 32x32 grey",
    "shapes-t2i-shuffle": "text-to-image on shapes, 64x64 (Token-Shuffle s=2 over the VQ codes, "
    "word prompts, context noise; trained on 2 CPU cores)",
    "shapes-t2i-scale": "text-to-image on shapes, 64x64 (next-scale, VAR, over a multi-scale VQ in "
    "2x2 windows, word prompts; trained on one GPU)",
    "tones-t2a": "text-to-audio on the built-in tones task, 1 s at 16 kHz (next-latent over "
    "waveform-autoencoder latents, per-token flow head, streaming; trained on 2 CPU cores)",
    "moving-shapes-t2v": "text-to-video on the built-in moving-shapes task, 12 frames of 64x64 "
    "(next-frame, FAR, over shapes-kl latents with a group flow head, word prompts; trained on "
    "2 CPU cores)",
}

#: name -> one-line description: tokenizers shipped on their own (a recipe's ``tokenizer:``,
#: ``mmgen eval tokenizer --model NAME``), under mmgen/builtin/tokenizers/<name>
BUILTIN_TOKENIZERS: dict[str, str] = {
    "shapes-kl": "KL autoencoder for shapes images and moving-shapes frames: 64x64 -> 16x16 x 4 "
    "latents (configs/shapes_kl.yaml)",
}
TOKENIZERS_DIR = BUILTIN_DIR / "tokenizers"
#: a model folder's optional ``{component: "<built-in model>/<component>"}`` file, for a
#: component it shares byte for byte with another built-in (stored once in the package)
SHARED_COMPONENTS = "shared.json"


def resolve_model_path(name_or_path: str | Path) -> Path:
    """A folder path as is; a built-in model name -> its folder inside the package.

    Raises:
        FileNotFoundError: neither an existing folder nor a known built-in name.
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    name = str(name_or_path)
    if name in BUILTIN_MODELS:
        folder = BUILTIN_DIR / name
        if not folder.is_dir():
            raise FileNotFoundError(f"built-in model {name!r} is missing from {BUILTIN_DIR}")
        return folder
    raise FileNotFoundError(
        f"{name!r} is neither a model folder nor a built-in model "
        f"(built-in: {sorted(BUILTIN_MODELS)})"
    )


def resolve_component_path(path: str | Path) -> Path:
    """A folder path as is, ``<built-in model>/<component>`` (e.g. ``shapes-t2i/vq``, the
    shipped tokenizer) or a built-in tokenizer's name (``shapes-kl``) -> that folder inside
    the package."""
    path = Path(path)
    if path.is_dir() or not path.parts:
        return path
    if str(path) in BUILTIN_TOKENIZERS:
        return TOKENIZERS_DIR / str(path)
    if path.parts[0] not in BUILTIN_MODELS:
        return path
    return BUILTIN_DIR / path


def component_folder(model_folder: str | Path, component: str) -> Path:
    """Where a pipeline folder's ``component`` lives: ``model_folder/component`` or, when the
    folder lists it in ``shared.json``, the built-in component named there.

    Raises:
        FileNotFoundError: the folder has neither the component nor a valid reference to it.
    """
    import json

    model_folder = Path(model_folder)
    own = model_folder / component
    shared = model_folder / SHARED_COMPONENTS
    if own.is_dir() or not shared.is_file():
        return own
    target = json.loads(shared.read_text()).get(component)
    if target is None:
        return own
    folder = resolve_component_path(target)
    if not folder.is_dir():
        raise FileNotFoundError(f"{shared}: {component!r} -> {target!r} is not a component folder")
    return folder
