"""tools/install_builtin.py: a component identical to another built-in's (under any of its
names) is found (and then stored once, by reference in shared.json); any other is not."""

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import install_builtin  # noqa: E402

from mmgen.builtin import BUILTIN_DIR  # noqa: E402


def test_an_identical_component_of_another_builtin_is_found(tmp_path):
    copy = tmp_path / "vq"
    shutil.copytree(BUILTIN_DIR / "shapes-t2i" / "vq", copy)
    assert install_builtin.identical_builtin_component(copy, "shapes-t2i-shuffle") == (
        "shapes-t2i/vq"
    )
    # a model is never its own twin, and one changed byte makes another component
    assert install_builtin.identical_builtin_component(copy, "shapes-t2i") is None
    weights = bytearray((copy / "model.safetensors").read_bytes())
    weights[-1] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(weights))
    assert install_builtin.identical_builtin_component(copy, "shapes-t2i-shuffle") is None


def test_a_component_under_another_name_finds_its_twin(tmp_path):
    # a borrowed scorer's tokenizer (scorer_vq) is its lender's vq
    copy = tmp_path / "scorer_vq"
    shutil.copytree(BUILTIN_DIR / "shapes-t2i" / "vq", copy)
    assert install_builtin.identical_builtin_component(copy, "shapes-t2i-scale") == (
        "shapes-t2i/vq"
    )


def test_a_component_identical_to_a_builtin_tokenizer_names_it_and_loads_through_it(tmp_path):
    from mmgen.builtin import TOKENIZERS_DIR, component_folder

    copy = tmp_path / "model" / "vq"
    shutil.copytree(TOKENIZERS_DIR / "shapes-kl", copy)
    (copy / "eval.json").unlink()  # only config.json and the weights are compared
    reference = install_builtin.identical_builtin_component(copy, "moving-shapes-t2v")
    assert reference == "shapes-kl"
    # a pipeline folder that names it in shared.json finds the built-in tokenizer's folder
    shutil.rmtree(copy)
    (tmp_path / "model" / "shared.json").write_text('{"vq": "shapes-kl"}')
    assert component_folder(tmp_path / "model", "vq") == TOKENIZERS_DIR / "shapes-kl"


def test_a_config_saved_without_its_module_still_matches_the_builtin_saved_with(tmp_path):
    import json

    copy = tmp_path / "vq"
    shutil.copytree(BUILTIN_DIR / "shapes-t2i" / "vq", copy)
    config = json.loads((copy / "config.json").read_text())
    assert config["_module"] == "mmgen.tokenizers.vq"  # what save_module writes now
    del config["_module"]  # as folders saved before _module existed
    (copy / "config.json").write_text(json.dumps(config, indent=2))
    assert install_builtin.identical_builtin_component(copy, "shapes-t2i-shuffle") == (
        "shapes-t2i/vq"
    )
    # two configs that both name a module must name the same one
    other = tmp_path / "other.json"
    config["_module"] = "mmgen.tokenizers.vq"
    (copy / "config.json").write_text(json.dumps(config, indent=2))
    other.write_text(json.dumps({**config, "_module": "elsewhere.vq"}))
    assert install_builtin.same_config(copy / "config.json", copy / "config.json")
    assert not install_builtin.same_config(copy / "config.json", other)
    config["codebook_size"] += 1  # any other field still counts
    (copy / "config.json").write_text(json.dumps(config))
    assert install_builtin.identical_builtin_component(copy, "shapes-t2i-shuffle") is None
