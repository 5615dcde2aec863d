"""The repository's tokenizers/ and kernels/ folders never shadow installed packages."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import importlib, json
out = {}
for name in ("tokenizers", "kernels"):
    try:
        module = importlib.import_module(name)
        out[name] = {"file": getattr(module, "__file__", None)}
    except ModuleNotFoundError as err:
        out[name] = {"error": str(err)}
import mmgen.tokenizers.vq, mmgen.kernels
out["ours"] = [mmgen.tokenizers.vq.__name__, mmgen.kernels.__name__]
print(json.dumps(out))
"""


def test_import_from_the_repository_root_gives_installed_packages_never_our_folders():
    import json

    # `python -c` started in the repository root puts it first on sys.path
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    tokenizers = out["tokenizers"]  # Hugging Face's, a dependency
    assert "file" in tokenizers, tokenizers
    assert not tokenizers["file"].startswith(str(REPO / "tokenizers")), tokenizers
    kernels = out["kernels"]  # Hugging Face's when installed; otherwise not found at all
    if "file" in kernels:
        assert not kernels["file"].startswith(str(REPO / "kernels")), kernels
    else:
        assert "kernels/ folder of the mmgen repository is mmgen.kernels" in kernels["error"]
    assert out["ours"] == ["mmgen.tokenizers.vq", "mmgen.kernels"]
