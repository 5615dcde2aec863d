"""Generate audio clips (same options as ``mmgen generate audio``): 16-bit PCM .wav files.

    python tools/generate_audio.py --model tones-t2a --prompt "play C4 E4 G4" --seed 0 \
        --out tune.wav
"""

import sys

from mmgen.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", "audio", *sys.argv[1:]]))
