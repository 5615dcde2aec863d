"""The built wheel holds the whole package (every module, recipe and built-in file) and runs
from it: a shipped recipe by name, a built-in model, the CLI."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# checkout folder -> where pyproject.toml installs it
INSTALLED_AS = {"mmgen": "mmgen", "tokenizers": "mmgen/tokenizers", "kernels": "mmgen/kernels",
                "configs": "mmgen/recipes"}  # fmt: skip
SHIPPED_SUFFIXES = {".py", ".yaml", ".json", ".safetensors"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(out)],
                   check=True, capture_output=True)  # fmt: skip
    (path,) = out.glob("mmgen-*.whl")
    return path


def test_the_wheel_holds_every_module_recipe_and_built_in_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for folder, target in INSTALLED_AS.items():
        for path in (REPO / folder).rglob("*"):
            if (
                path.is_file()
                and path.suffix in SHIPPED_SUFFIXES
                and "__pycache__" not in path.parts
            ):
                expected.add(f"{target}/{path.relative_to(REPO / folder).as_posix()}")
    assert expected - names == set()  # e.g. a new subpackage missing from pyproject's list
    assert "mmgen/recipes/shapes_t2i.yaml" in names and "mmgen/orders/next_scale.py" in names


PROBE = """
import json, mmgen
from mmgen.training.config import load_run_config, resolve_recipe
from mmgen.pipelines.ar_image import ARImagePipeline
from mmgen.orders.base import build_order
pipe = ARImagePipeline.from_pretrained("shapes-t2i")
order = build_order({"name": "token_shuffle", "window": 2}, pipe.vq, 64, 56)
print(json.dumps({"mmgen": mmgen.__file__, "recipe": str(resolve_recipe("shapes_t2i")),
                  "task": load_run_config("orders/next_scale").task,
                  "readme_path": str(resolve_recipe("configs/shapes_vq.yaml")),
                  "groups": order.num_groups}))
"""


def test_the_unpacked_wheel_runs_recipes_built_ins_and_the_cli_from_another_folder(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-P", "-c", PROBE], cwd=elsewhere, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(seen["mmgen"]).is_relative_to(site)  # the wheel's copy, not the checkout
    assert Path(seen["recipe"]) == site / "mmgen" / "recipes" / "shapes_t2i.yaml"
    assert Path(seen["readme_path"]) == site / "mmgen" / "recipes" / "shapes_vq.yaml"
    assert seen["task"] == "text_to_image" and seen["groups"] == 64
    cli = subprocess.run([sys.executable, "-P", "-m", "mmgen.cli", "list"], cwd=elsewhere,
                         env=env, capture_output=True, text=True)  # fmt: skip
    assert cli.returncode == 0 and "next_scale" in cli.stdout, cli.stderr[-2000:]
