"""Reconstruction quality of an image tokenizer on held-out ``shapes`` images."""

from __future__ import annotations

import torch

from mmgen.data.shapes import ShapesDataset
from mmgen.eval.shapes_verifier import verify
from mmgen.pipelines.outputs import to_output_type

# held-out images come from a seed no training recipe uses
HELD_OUT_SEED = 1_000_003


@torch.no_grad()
def evaluate_reconstruction(
    vq, *, num_images: int = 400, seed: int = HELD_OUT_SEED, batch_size: int = 50
) -> dict:
    """Verifier pass rate on reconstructions, the originals' pass rate, and code usage.

    Returns a dict with ``reconstruction_pass_rate``, ``original_pass_rate``,
    ``codebook_utilisation`` (fraction of codes used on these images; None for continuous
    latents) and ``mse``.
    """
    data = ShapesDataset(num_images, seed=seed)
    device = next(vq.parameters()).device
    passed, original_passed, used, sq_err = 0, 0, set(), 0.0
    was_training = vq.training
    vq.eval()
    for start in range(0, num_images, batch_size):
        items = [data[i] for i in range(start, min(start + batch_size, num_images))]
        images = torch.stack([it["image"] for it in items]).float().div(127.5).sub(1).to(device)
        ids = vq.encode(images)
        recon = vq.decode(ids)
        if vq.codebook_size:  # continuous tokenizers have no codes to count
            used.update(ids.unique().tolist())
        sq_err += ((recon - images) ** 2).mean(dim=(1, 2, 3)).sum().item()
        for item, image in zip(items, to_output_type(recon, "pil")):
            passed += verify(image, item["prompt"]).passed
            original_passed += verify(item["image"], item["prompt"]).passed
    vq.train(was_training)
    return {
        "reconstruction_pass_rate": passed / num_images,
        "original_pass_rate": original_passed / num_images,
        "codebook_utilisation": len(used) / vq.codebook_size if vq.codebook_size else None,
        "mse": sq_err / num_images,
        "num_images": num_images,
    }


@torch.no_grad()
def evaluate_digits_reconstruction(vq) -> dict:
    """Digits tokenizer quality on the held-out split: classifier accuracy on reconstructions
    (beside the real images' accuracy), MSE and code usage."""
    from mmgen.data.digits import load_digits_split
    from mmgen.eval.digits_eval import classifier_accuracy, verifier_classifier

    images, labels = load_digits_split("test")
    device = next(vq.parameters()).device
    was_training = vq.training
    vq.eval()
    real = images.float().div(127.5).sub(1).to(device)  # (N, 1, 32, 32) in [-1, 1]
    ids = vq.encode(real)
    recon = vq.decode(ids)
    vq.train(was_training)
    classifier = verifier_classifier()
    return {
        "reconstruction_accuracy": classifier_accuracy(classifier, recon.cpu(), labels),
        "original_accuracy": classifier_accuracy(classifier, real.cpu(), labels),
        "codebook_utilisation": ids.unique().numel() / vq.codebook_size,
        "mse": ((recon - real) ** 2).mean().item(),
        "num_images": len(labels),
    }


@torch.no_grad()
def evaluate_clip_reconstruction(
    autoencoder, *, num_clips: int = 100, seed: int = HELD_OUT_SEED, batch_size: int = 8
) -> dict:
    """A per-frame tokenizer on held-out ``moving-shapes`` clips: the clip verifier's pass rate
    on reconstructed clips (every frame encoded and decoded alone), the per-frame pass rate,
    the originals' pass rate and the pixel MSE."""
    from mmgen.data.moving_shapes import MovingShapesDataset
    from mmgen.eval.moving_shapes_verifier import verify_clip

    data = MovingShapesDataset(num_clips, seed=seed)
    device = next(autoencoder.parameters()).device
    passed, original_passed, frames_passed, frames_seen, sq_err = 0, 0, 0, 0, 0.0
    was_training = autoencoder.training
    autoencoder.eval()
    for start in range(0, num_clips, batch_size):
        items = [data[i] for i in range(start, min(start + batch_size, num_clips))]
        clips = torch.stack([it["frames"] for it in items])  # (b, F, 3, H, W) uint8
        frames = clips.flatten(0, 1).float().div(127.5).sub(1).to(device)
        recon = autoencoder.decode(autoencoder.encode(frames))  # (b * F, 3, H, W)
        sq_err += ((recon - frames) ** 2).mean(dim=(1, 2, 3)).sum().item()
        pictures = to_output_type(recon, "pil")
        F = clips.shape[1]
        for b, item in enumerate(items):
            verdict = verify_clip(pictures[b * F : (b + 1) * F], item["prompt"])
            passed += verdict.passed
            frames_passed += sum(verdict.frames)
            frames_seen += len(verdict.frames)
            original_passed += verify_clip(item["frames"], item["prompt"]).passed
    autoencoder.train(was_training)
    return {
        "reconstruction_pass_rate": passed / num_clips,
        "frame_pass_rate": frames_passed / frames_seen,
        "original_pass_rate": original_passed / num_clips,
        "mse": sq_err / frames_seen,
        "num_images": num_clips,
    }


@torch.no_grad()
def evaluate_audio_reconstruction(
    autoencoder, *, num_clips: int = 400, seed: int = HELD_OUT_SEED, batch_size: int = 50
) -> dict:
    """An audio tokenizer on held-out ``tones`` clips: the tones verifier's pass rate on
    reconstructions beside the originals', the waveform MSE and the latent rate (latents per
    second of audio)."""
    from mmgen.data.tones import CLIP_SAMPLES, SAMPLE_RATE, TonesDataset
    from mmgen.eval.tones_verifier import verify_tones

    data = TonesDataset(num_clips, seed=seed)
    device = next(autoencoder.parameters()).device
    passed, original_passed, sq_err = 0, 0, 0.0
    was_training = autoencoder.training
    autoencoder.eval()
    for start in range(0, num_clips, batch_size):
        items = [data[i] for i in range(start, min(start + batch_size, num_clips))]
        audio = torch.stack([it["audio"] for it in items]).to(device)  # (b, T)
        recon = autoencoder.decode(autoencoder.encode(audio))[:, : audio.shape[1]]
        sq_err += ((recon - audio) ** 2).mean(dim=1).sum().item()
        for item, clip in zip(items, recon.cpu()):
            passed += verify_tones(clip.numpy(), item["prompt"]).passed
            original_passed += verify_tones(item["audio"].numpy(), item["prompt"]).passed
    autoencoder.train(was_training)
    latents = autoencoder.num_latents(CLIP_SAMPLES)
    return {
        "reconstruction_pass_rate": passed / num_clips,
        "original_pass_rate": original_passed / num_clips,
        "mse": sq_err / num_clips,
        "latents_per_second": latents * SAMPLE_RATE / CLIP_SAMPLES,
        "num_images": num_clips,
    }
