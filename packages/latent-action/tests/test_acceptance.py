"""Issue acceptance on a tiny synthetic world (a square moved by 5 actions): a short training
gives probe accuracy far above chance (20%); a model whose encoder ignores the next frame
does not; codes are used above a floor (no collapse)."""

import torch

from wmkit.core import to_float_video
from wmkit.latent_action import LatentActionAutoencoder, code_statistics, probe_latent_actions


def test_probe_accuracy_far_above_chance_and_no_collapse(trained, squares, squares_source, splits):
    report = probe_latent_actions(trained, squares_source, *splits, steps=200)
    assert report.metric == "accuracy"
    for kind in ("linear", "mlp"):
        # chance is 20% (5 actions); the ceiling is ~78% (a move into a wall changes nothing)
        assert report.probes[kind].test_score > 0.5, report.probes[kind]
        assert report.probes["random_" + kind].test_score < 0.35
    assert report.curves["latent actions"][8] > 0.5
    assert report.curves["random latents"][8] < 0.35
    assert report.perplexity is not None and report.perplexity > 2.0  # of 8 codes
    ids = trained.infer(to_float_video(squares.frames[40:])).flatten(0, 1)
    assert code_statistics(ids, 8)["usage"] >= 3 / 8


def test_encoder_blind_to_next_frame_does_not_carry_the_action(
    squares, squares_source, splits, train_fn
):
    torch.manual_seed(0)
    blind = LatentActionAutoencoder.from_size("tiny", blind=True)
    train_fn(blind, to_float_video(squares.frames[:40]), steps=200)  # as `trained`
    report = probe_latent_actions(blind.eval(), squares_source, *splits, steps=200)
    assert report.probes["linear"].test_score < 0.35
    assert report.probes["mlp"].test_score < 0.35
