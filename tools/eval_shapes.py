"""Score a text-to-image model on shapes (same options as ``mmgen eval shapes``)."""

import sys

from mmgen.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", "shapes", *sys.argv[1:]]))
