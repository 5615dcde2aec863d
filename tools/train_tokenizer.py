"""Train an image tokenizer from a recipe (same options as ``mmgen train tokenizer``).

accelerate launch tools/train_tokenizer.py --config configs/shapes_vq.yaml
"""

import sys

from mmgen.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "tokenizer", *sys.argv[1:]]))
