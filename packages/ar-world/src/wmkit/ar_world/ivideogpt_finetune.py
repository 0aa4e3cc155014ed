"""`finetune_start`: the model an iVideoGPT fine-tuning run starts from.

iVideoGPT (Wu et al. 2024, §3.3) pre-trains its transformer action-free on Open X-Embodiment
and fine-tunes it on a target domain with actions: ``train_gpt.py --action_conditioned
--load_internal_llm --pretrained_transformer_path ...`` wraps the pre-trained Llama in
``HeadModelWithAction``, whose ``action_linear`` starts at zero, loads the action-free weights
into the inner Llama and trains everything. :func:`finetune_start` does the same with a
converted (``wmkit convert ivideogpt``) or earlier fine-tuned ``IVideoGPTWorldModel``
directory: with an ``action_spec`` and action-free weights it returns an action-conditioned
model whose prediction is, at step 0, exactly the pre-trained one (the zero projection adds
nothing to the ``sdf`` embeddings).
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from wmkit.ar_world.ivideogpt_world_model import IVideoGPTWorldModel
from wmkit.core import ActionSpec, load_pretrained

__all__ = ["finetune_start"]


def finetune_start(
    directory: str | os.PathLike, action_spec: ActionSpec | dict[str, Any] | None = None
) -> IVideoGPTWorldModel:
    """The :class:`IVideoGPTWorldModel` saved in ``directory``, ready to fine-tune.

    Args:
        directory: a ``save_pretrained`` directory of an ``IVideoGPTWorldModel`` (``OUT/world``
            of ``wmkit convert ivideogpt``).
        action_spec: the data's continuous ``[A]`` actions. ``None`` keeps the model as it is
            (action-free fine-tuning of an action-free model). With action-free weights, a
            zero-initialised ``action_linear`` is added (iVideoGPT's recipe); with
            action-conditioned weights the spec must have the model's action size, and the
            model takes the given bounds.

    Raises:
        ValueError: the directory holds another class, actions for a goal-conditioned model,
            or an action size different from the model's.
    """
    model = load_pretrained(directory)
    if not isinstance(model, IVideoGPTWorldModel):
        raise ValueError(
            f"{directory} holds a {type(model).__name__}, not an IVideoGPTWorldModel (convert a "
            "released folder with `wmkit convert ivideogpt FOLDER --out OUT` and pass OUT/world)"
        )
    if action_spec is None:
        return model
    spec = ActionSpec.coerce(action_spec, "action_spec")
    if spec.kind != "continuous" or len(spec.action_shape) != 1:
        raise ValueError(
            f"action_spec must be continuous with shape (A,) (iVideoGPT projects the action "
            f"vector); got {spec.describe()}"
        )
    if model.goal_conditioned:
        raise ValueError(
            f"{directory} holds a goal-conditioned model; iVideoGPT fine-tunes with actions from "
            "the action-free weights (convert the act-free release instead)"
        )
    dim = spec.action_shape[0]
    if model.action_conditioned and model.transformer.action_dim != dim:
        raise ValueError(
            f"{directory} takes {model.transformer.action_dim}-d actions but action_spec is "
            f"{dim}-d; start from the action-free release to fine-tune with other actions"
        )
    sampler = model.decoder.sampler
    tuned = IVideoGPTWorldModel(
        model.tokenizer, model.transformer.config, model.layout, action_spec=spec,
        frame_size=model.frame_size, max_frames=model.max_frames,
        temperature=sampler.temperature, top_k=sampler.top_k, use_cache=model.decoder.use_cache,
    )  # fmt: skip
    if model.action_conditioned:
        tuned.transformer.load_state_dict(model.transformer.state_dict(), strict=True)
    else:
        tuned.transformer.llm.load_state_dict(model.transformer.llm.state_dict(), strict=True)
        nn.init.zeros_(tuned.transformer.action_linear.weight)
        nn.init.zeros_(tuned.transformer.action_linear.bias)
    return tuned
