"""Fixtures of the training tests: fresh accelerate singletons, one tiny trained tokenizer."""

import pytest
from training_recipes import reset_accelerate, run, vq_recipe


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    reset_accelerate()
    yield
    reset_accelerate()


@pytest.fixture(scope="session")
def trained_vq(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("vq")
    metrics = run(vq_recipe(tmp_path))
    reset_accelerate()
    return tmp_path / "vq", metrics
