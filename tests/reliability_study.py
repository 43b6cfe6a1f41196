"""A small study for the reliability tests (imported by tests/test_reliability_round2.py and its child processes).

``rel-momentum``: SGD with and without heavy-ball momentum on ``logreg``, a few seeds, one declared prediction
(momentum lowers the final training loss: ratio < 1 on the log scale). The numbers also use each run's model (its
weight norm), so a study run again must rebuild reused runs' models exactly, and one run carries a callback (such a
run is trained again rather than reused).
"""

from __future__ import annotations

from typing import Any

import torch

from descentlab import studies
from descentlab.studies import Prediction, Study
from descentlab.train import Callback

NAME = "rel-momentum"


def _run(ctx: Any, cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[float]]]:
    ratios, norms, losses = [], [], {}
    for seed in range(int(cfg["seeds"])):
        final = {}
        for momentum in (0.0, 0.9):
            cbs = [
                Callback(
                    lambda c: {
                        "weight_sq": float(sum((p.detach() ** 2).sum() for p in c.model.parameters()))
                    },
                    20,
                )
            ]
            run = ctx.train(
                "logreg",
                optimizer="sgd",
                lr=0.05,
                hparams={"momentum": momentum},
                steps=int(cfg["steps"]),
                eval_every=20,
                seed=seed,
                device="cpu",
                callbacks=cbs if seed == 0 and momentum == 0.0 else [],
            )
            final[momentum] = float(run.final["train_loss"])
            norms.append(float(torch.sqrt(sum((p.detach() ** 2).sum() for p in run.model.parameters()))))
            losses[run.id] = run.metrics("batch_loss")[-1][1]
        ratios.append(final[0.9] / final[0.0])
    numbers = {"ratios": ratios, "weight_norms": norms, "last_batch_loss": sorted(losses.values())}
    return numbers, {"momentum_helps": ratios}  # judged on the log scale


STUDY = Study(
    name=NAME,
    description="momentum lowers logreg's training loss (test study)",
    slide="seed 999, 'Test'",
    quick={"seeds": 3, "steps": 80},
    full={"seeds": 3, "steps": 80},
    run=_run,
    predictions=(
        Prediction(
            name="momentum_helps",
            statement="heavy-ball momentum ends lower than plain SGD at the same step size",
            source="test",
            quantity="final train loss, momentum / plain",
            direction="<",
            threshold=1.0,
            scale="log",
        ),
    ),
    in_tour=False,
)


def register() -> None:
    """Add the study to the registry (once)."""
    if NAME not in studies.available():
        studies.register(STUDY)


register()
