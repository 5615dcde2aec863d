"""Copy a trained pipeline folder into the package as a built-in model, or a trained tokenizer
folder as a built-in tokenizer.

    python tools/install_builtin.py --source runs/shapes_t2i/final --name shapes-t2i \
        --weights-dtype float16
    python tools/install_builtin.py --source runs/shapes_kl/final --name shapes-kl \
        --weights-dtype float16     # a name of BUILTIN_TOKENIZERS: mmgen/builtin/tokenizers/

Only model_index.json, training_config.yaml, a learned text tokenizer's tokenizer.json and the
components' config.json + model.safetensors are copied (a tokenizer: its config.json,
model.safetensors and eval.json); a component identical byte for byte to another built-in's
(the shipped VQ a recipe trained on, or a built-in tokenizer such as ``shapes-kl``) is not
copied but named in the folder's shared.json.
The folder is loaded back once to check it.
``--weights-dtype float16`` stores floating-point weights at half size (the package's size
budget); they load into float32 modules unchanged, so the pipeline computes in float32 and
reloads bit-identically.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch


def copy_component(source: Path, target: Path, dtype: str | None) -> None:
    """config.json and model.safetensors (floating tensors cast to ``dtype`` when given)."""
    from mmgen.utils.serialization import load_state_dict, save_state_dict

    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / "config.json", target / "config.json")
    weights = load_state_dict(source / "model.safetensors")
    if dtype is not None:
        cast = getattr(torch, dtype)
        weights = {k: v.to(cast) if v.is_floating_point() else v for k, v in weights.items()}
    save_state_dict(weights, target / "model.safetensors")


def same_config(a: Path, b: Path) -> bool:
    """Whether two component config.json files describe the same component: equal as JSON,
    ``_module`` compared only when both have it (folders saved before it existed lack it)."""
    first, second = json.loads(a.read_text()), json.loads(b.read_text())
    if "_module" not in first or "_module" not in second:
        first.pop("_module", None)
        second.pop("_module", None)
    return first == second


def identical_builtin_component(folder: Path, name: str) -> str | None:
    """``"<built-in>/<component>"`` (any of another built-in model's components: a borrowed
    ``scorer_vq`` is its lender's ``vq``), or the name of a built-in tokenizer, whose folder
    holds the same model.safetensors bytes as ``folder`` and the same config.json
    (:func:`same_config`), else None."""
    from mmgen.builtin import (
        BUILTIN_DIR,
        BUILTIN_MODELS,
        BUILTIN_TOKENIZERS,
        resolve_component_path,
    )

    weights, config_file = "model.safetensors", "config.json"
    references = [
        f"{other}/{component.name}"
        for other in sorted(set(BUILTIN_MODELS) - {name})
        for component in sorted((BUILTIN_DIR / other).glob("*/"))
        if (component / weights).is_file()
    ]
    for reference in [*references, *BUILTIN_TOKENIZERS]:
        twin = resolve_component_path(reference)  # the folder shared.json would point to
        if (
            (twin / weights).is_file()
            and (twin / config_file).is_file()
            and (twin / weights).read_bytes() == (folder / weights).read_bytes()
            and same_config(twin / config_file, folder / config_file)
        ):
            return reference
    return None


def main() -> None:
    from mmgen.builtin import (
        BUILTIN_DIR,
        BUILTIN_MODELS,
        BUILTIN_TOKENIZERS,
        SHARED_COMPONENTS,
        TOKENIZERS_DIR,
    )
    from mmgen.pipelines.ar_image import ARImagePipeline
    from mmgen.utils.serialization import load_component

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", required=True, help="save_pretrained or tokenizer folder")
    parser.add_argument("--name", required=True, choices=sorted({*BUILTIN_MODELS,
                                                                 *BUILTIN_TOKENIZERS}))  # fmt: skip
    parser.add_argument(
        "--weights-dtype",
        choices=["float32", "float16", "bfloat16"],
        default=None,
        help="cast floating-point weights to this dtype when copying (default: as trained)",
    )
    args = parser.parse_args()

    source = Path(args.source)
    if args.name in BUILTIN_TOKENIZERS:
        load_component(source)  # fails loudly on anything inconsistent
        target = TOKENIZERS_DIR / args.name
        if target.exists():
            shutil.rmtree(target)
        copy_component(source, target, args.weights_dtype)
        if (source / "eval.json").is_file():
            shutil.copy2(source / "eval.json", target / "eval.json")
        load_component(target)
    else:
        # the class model_index.json names (image, video or audio); fails loudly on anything
        # inconsistent
        pipeline_class = type(ARImagePipeline.from_pretrained(source))
        target = BUILTIN_DIR / args.name
        if target.exists():
            shutil.rmtree(target)
        for relative in ("model_index.json", "training_config.yaml", "tokenizer.json"):
            if (source / relative).is_file():
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source / relative, target / relative)
        shared = {}
        optional = [n for n in pipeline_class.optional_components if (source / n).is_dir()]
        for component in ("transformer", "vq", *optional):
            copy_component(source / component, target / component, args.weights_dtype)
            twin = identical_builtin_component(target / component, args.name)
            if twin is not None:  # stored once: the package's size budget
                shutil.rmtree(target / component)
                shared[component] = twin
        if shared:
            (target / SHARED_COMPONENTS).write_text(json.dumps(shared, indent=2) + "\n")
            print(f"shared with other built-ins (not copied): {shared}")
        pipeline_class.from_pretrained(args.name)
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file()) / 2**20
    print(f"installed {source} as built-in {args.name!r} ({size:.1f} MiB) in {target}")


if __name__ == "__main__":
    main()
