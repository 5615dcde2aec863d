"""Every shipped recipe reads as a valid run config, with a model config its class accepts."""

import pytest

from mmgen.registry import resolve_class
from mmgen.training.config import load_run_config, recipes_dir
from mmgen.utils.config import from_dict

RECIPES = sorted(
    p for p in recipes_dir().rglob("*.yaml") if p.parent.name != "accelerate"
)  # accelerate's launch configs are not recipes


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(recipes_dir())))
def test_the_recipe_parses_and_its_model_config_is_accepted(path):
    config = load_run_config(path)
    if config.task == "tokenizer":
        cls = resolve_class(config.model_class, what="model_class")
        from_dict(cls.config_class, config.model, where="model")
    elif config.task == "match_scorer":  # its sizes come from the pipeline; the rest must fit
        from mmgen.models.match_scorer import MatchScorerConfig

        sizes = {"condition_vocab_size": 40, "condition_length": 12, "num_codes": 512,
                 "grid": (16, 16), "pad_id": 0}  # fmt: skip
        from_dict(MatchScorerConfig, {**sizes, **config.model}, where="model")
        assert config.pipeline
    else:
        assert config.tokenizer


def test_the_continuous_and_frequency_recipes_ship():
    names = {str(p.relative_to(recipes_dir()).with_suffix("")) for p in RECIPES}
    assert {"shapes_kl", "shapes_fvq", "shapes_vq", "shapes_msvq"} <= names
