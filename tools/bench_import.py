"""Import cost of mmgen against torch alone, measured in the same run (fresh interpreters).

python tools/bench_import.py [--repeats 5]
"""

import argparse
import statistics
import subprocess
import sys
import time


def timed(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cases = {
        "python": "pass",
        "import torch": "import torch",
        "import mmgen": "import mmgen",
        "mmgen + TextToImagePipeline": "import mmgen; mmgen.TextToImagePipeline",
    }
    timed("import torch")  # warm the file cache
    results = {
        name: statistics.median(timed(code) for _ in range(args.repeats))
        for name, code in cases.items()
    }
    base = results["import torch"]
    print(f"{'case':<30} {'median s':>9} {'vs torch':>9}")
    for name, seconds in results.items():
        print(f"{name:<30} {seconds:>9.3f} {seconds - base:>+9.3f}")


if __name__ == "__main__":
    main()
