"""Train the digits verifier's classifier once (seed 0, one CPU thread) and ship its weights.

    OMP_NUM_THREADS=1 python tools/freeze_digits_verifier.py

Writes mmgen/builtin/digits-verifier.safetensors, which ``mmgen eval digits`` then loads
instead of retraining (retraining gives slightly different weights on different thread counts).
"""

import torch

from mmgen.data.digits import load_digits_split
from mmgen.eval.digits_eval import (
    DEFAULT_EPOCHS,
    VERIFIER_WEIGHTS,
    _train_cached,
    classifier_accuracy,
)
from mmgen.utils.serialization import save_state_dict


def main() -> None:
    torch.set_num_threads(1)
    classifier = _train_cached.__wrapped__(0, DEFAULT_EPOCHS, "cpu")
    images, labels = load_digits_split("test")
    accuracy = classifier_accuracy(classifier, images, labels)
    save_state_dict(classifier.state_dict(), VERIFIER_WEIGHTS)
    print(f"wrote {VERIFIER_WEIGHTS} (held-out accuracy {accuracy:.4f})")


if __name__ == "__main__":
    main()
