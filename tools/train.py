"""Train a generator from a recipe (same options as ``mmgen train model``).

accelerate launch tools/train.py --config configs/shapes_t2i.yaml
"""

import sys

from mmgen.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "model", *sys.argv[1:]]))
