"""Generate videos (same options as ``mmgen generate video``): .mp4 (imageio-ffmpeg) or .gif.

    python tools/generate_video.py --model moving-shapes-t2v --prompt "a red circle moving right" \
        --num-frames 12 --seed 0 --out clip.mp4
"""

import sys

from mmgen.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", "video", *sys.argv[1:]]))
