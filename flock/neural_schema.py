"""Scenario schema of the neural steering formulation (``rules.formulation: neural``).

    rules:
      formulation: neural
      model:
        weights: steer.safetensors   # relative to the scenario file; safetensors only
        hidden: [64, 64]             # optional: checked against the file's metadata
        activation: relu             # optional: relu | tanh | identity, checked likewise
      view_radius: 10                # cohesion / alignment neighbors (flat kernel)
      separation_radius: 5           # separation neighbors (inverse-square kernel)
      field_of_view: 360             # degrees, as the boid rules
      max_force: 0.175               # the network's output unit and the clip of its
                                     # acceleration (default: agents.max_force)
      wander: 0.01                   # optional, as the boid rules
      avoidance: {weight, lookahead} # optional, as the boid rules

``agents.max_speed`` is required: the observation is normalised by it (``flock.neural``).
The weights file is read when the scenario is validated, so a missing file or one whose
architecture does not match is an error of ``load_scenario``, naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, PrivateAttr

from .scenario import AvoidanceSpec, _Model

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
ACTIVATIONS = ("relu", "tanh", "identity")


class NeuralModelSpec(_Model):
    """The network: a stack of ``nn.Linear`` with ``activation`` between them (``flock.neural.build_mlp``)."""

    weights: str
    hidden: list[Annotated[int, Field(ge=1)]] | None = None
    activation: Literal["relu", "tanh", "identity"] | None = None


class NeuralRules(_Model):
    """One trained network steers every agent from its observation (``flock.neural.observe``)."""

    formulation: Literal["neural"]
    model: NeuralModelSpec
    view_radius: PositiveFloat
    separation_radius: PositiveFloat
    field_of_view: Annotated[float, Field(gt=0, le=360)] = 360.0
    max_force: PositiveFloat | None = None
    wander: NonNegFloat | None = None
    avoidance: AvoidanceSpec | None = None

    # a module plugged in from Python (flock.NeuralSteering(module).attach(scenario)) or the one
    # loaded from the weights file, cached; never part of the scenario's data
    _module: object | None = PrivateAttr(default=None)


def check_neural(sc, base_dir: Path) -> list[tuple[str, str]]:
    """Problems (key path, message) of a neural scenario the schema cannot see (other scenarios: none)."""
    if not isinstance(sc.rules, NeuralRules):
        return []
    problems: list[tuple[str, str]] = []
    if sc.agents.max_speed is None:
        problems.append(("agents.max_speed", "required key is missing (the neural observation is normalised "
                                             "by the speed limit)"))
    if sc.rules.max_force is None and sc.agents.max_force is None:
        problems.append(("rules.max_force", "required key is missing (or set agents.max_force): the network's "
                                            "output is in units of max_force"))
    if sc.species is not None or sc.interactions is not None:
        problems.append(("species" if sc.species is not None else "interactions",
                         "groups run with the seed and reynolds formulations, got neural"))
    path = base_dir / sc.rules.model.weights
    if path.suffix != ".safetensors":
        problems.append(("rules.model.weights", f"expected a .safetensors file, got {sc.rules.model.weights!r}"))
    elif not path.is_file():
        problems.append(("rules.model.weights", f"file not found: {path}"))
    elif not problems:
        from .neural import WeightsError, load_weights  # noqa: PLC0415  (torch-side, after the schema)

        try:
            load_weights(path, sc)
        except WeightsError as exc:
            problems.append((exc.key, str(exc)))
    return problems


__all__ = ["ACTIVATIONS", "NeuralModelSpec", "NeuralRules", "check_neural"]
