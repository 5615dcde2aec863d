"""Generate an image grid (same options as ``mmgen generate image``).

    python tools/generate_image.py --model runs/shapes_t2i/final --prompt "a red circle" \
        --num-images 4 --seed 0 --out grid.png
"""

import sys

from mmgen.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", "image", *sys.argv[1:]]))
