"""Neural steering: one network turns every agent's observation into its acceleration, in one call.

The observation (``observe``, version ``OBS_VERSION``) is built only from the kernel sums of
two channels and the agent's own state, in the agent's own frame: the first axis is the
agent's heading unit(v); in 2D the second is its left perpendicular; in 3D the second is
the part of the cohesion offset (else of the relative velocity, of the separation vector,
of the wall offset, else of the world axis least aligned with the heading: an agent with
nothing around it, whose features then do not depend on that axis) perpendicular to the heading,
and the third their cross product. So the features do not change when the whole flock is
rotated or translated (in an open or walled world; a torus has no rotations).

Channels: 0 flat within ``rules.view_radius``, 1 inverse-square within
``rules.separation_radius`` (both with ``rules.field_of_view``): observation ``flock-obs-v1``.
The smooth variant ``flock-obs-v1-smooth`` (training through the simulation, ``flocksim train
--objective``) reads two triangular channels instead, w = max(0, 1 - d / r) at the same radii:
the "count" columns are then weight sums, the centre and mean velocity weighted means, and the
separation s = r_sep sum_j (1 - d_ij / r_sep) (p - x_j). A network knows the observation it was
trained on (its weights' metadata ``observation``), and the rule reads the matching channels.
Features, F = 3D + 3 (+ D):

    columns          feature                                             normalised by
    [0, D)           offset to the centre of the view neighbors, xbar - p   view_radius
    [D, 2D)          their mean velocity relative to its own, vbar - v    max_speed
    [2D, 3D)         separation s = r_sep sum_j (p - x_j) / d_ij^2, as s / (1 + |s|)
    3D               view neighbor count n as n / (1 + n)
    3D + 1           separation neighbor count, likewise
    3D + 2           speed |v|                                            max_speed
    [3D + 3, 4D + 3) nearest wall (soft or reflect worlds only): unit offset to the
                     nearest face x max(0, 1 - distance / view_radius)

An agent that sees nobody has zeros in the neighbor columns. The network's output [N, D] is
in the agent frame and in units of the rule's ``max_force``; it is rotated back to the world
frame and clipped to ``max_force``. Walls, point forces, obstacles and the speed limits then
act as for every formulation (``flock.step``).

Weights come only from safetensors files (``save_weights`` / ``load_weights``), whose
metadata hold the architecture and the observation version; never pickle.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from .errors import ScenarioError
from .formulations import Rule, Update, register_rule
from .kernels import Kernel
from .scenario_schema import NeuralRules
from .vectors import clip_norm, unit

OBS_VERSION = "flock-obs-v1"
SMOOTH_OBS_VERSION = "flock-obs-v1-smooth"
OBS_VERSIONS = (OBS_VERSION, SMOOTH_OBS_VERSION)
WEIGHTS_FORMAT = "flock.neural"
_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "identity": nn.Identity}


class WeightsError(ScenarioError):
    """A weights file that cannot steer the scenario; ``key`` is the scenario key it concerns."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


# ---------------------------------------------------------------- observation


def has_walls(world) -> bool:
    """The world has walls an agent can observe (soft or reflect boundary)."""
    return world.boundary in ("soft", "reflect")


def n_features(dim: int, walls: bool) -> int:
    """F, the width of ``observe``'s output for a world of ``dim`` axes."""
    return 3 * dim + 3 + (dim if walls else 0)


def neural_kernels(rules: NeuralRules, observation: str = OBS_VERSION) -> list[Kernel]:
    """The two channels the observation reads: view (flat), separation (inverse square); or, for
    ``SMOOTH_OBS_VERSION``, both triangular (weights differentiable in the positions)."""
    fov = rules.field_of_view
    if observation == SMOOTH_OBS_VERSION:
        return [Kernel("triangular", radius=rules.view_radius, fov=fov),
                Kernel("triangular", radius=rules.separation_radius, fov=fov)]
    return [Kernel("flat", radius=rules.view_radius, fov=fov),
            Kernel("inverse_square", radius=rules.separation_radius, fov=fov)]


def observation_of(module: nn.Module) -> str:
    """The observation version ``module`` steers from (``flock_observation`` attribute, else ``OBS_VERSION``)."""
    return getattr(module, "flock_observation", OBS_VERSION)


def _first_nonzero(candidates: list[torch.Tensor]) -> torch.Tensor:
    """Row by row, the unit vector of the first candidate [N, D] that is not zero (the last is kept)."""
    out = unit(candidates[-1])
    for c in reversed(candidates[:-1]):
        u = unit(c)
        out = torch.where((u != 0).any(-1, keepdim=True), u, out)
    return out


def agent_frame(vel: torch.Tensor, refs: list[torch.Tensor]) -> torch.Tensor:
    """[N, D, D] rotation whose rows are each agent's frame axes (world -> agent: ``R @ x``).

    Args:
        vel: [N, D] velocities; the heading is the first axis (an agent at rest takes the first
            non-zero of ``refs``, else the world x axis).
        refs: [N, D] vectors that fix the second axis in 3D (the first with a part perpendicular
            to the heading is used; else the world axis least aligned with the heading).
    """
    n, dim = vel.shape
    eye = torch.eye(dim, dtype=vel.dtype, device=vel.device)
    e1 = _first_nonzero([vel, *refs, eye[0].expand(n, dim)])
    if dim == 2:
        e2 = torch.stack([-e1[:, 1], e1[:, 0]], dim=1)
        return torch.stack([e1, e2], dim=1)
    least = eye[e1.abs().argmin(dim=1)]
    perps = [r - (r * e1).sum(-1, keepdim=True) * e1 for r in (*refs, least)]
    # a perpendicular part below 1e-9 of the vector is round-off, not a direction
    perps = [torch.where(torch.linalg.vector_norm(p, dim=-1, keepdim=True)
                         > 1e-9 * torch.linalg.vector_norm(r, dim=-1, keepdim=True), p, torch.zeros_like(p))
             for p, r in zip(perps, (*refs, least))]
    e2 = _first_nonzero(perps)
    e3 = torch.linalg.cross(e1, e2, dim=-1)
    return torch.stack([e1, e2, e3], dim=1)


def _wall_proximity(pos: torch.Tensor, world, reach: float) -> torch.Tensor:
    """[N, D] unit offset to the nearest face of the box x max(0, 1 - distance / reach)."""
    rel = pos - world.origin_tensor(pos)
    size = world.size_tensor(pos)
    dist = torch.cat([rel, size - rel], dim=1)                       # [N, 2D]: to low faces, then high
    near, face = dist.clamp_min(0).min(dim=1)
    dim = pos.shape[1]
    axis = face % dim
    sign = torch.where(face < dim, -1.0, 1.0).to(pos.dtype)
    direction = torch.nn.functional.one_hot(axis, dim).to(pos.dtype) * sign[:, None]
    return direction * torch.clamp_min(1.0 - near / reach, 0.0)[:, None]


def observe_with_frame(state, sums: torch.Tensor, params) -> tuple[torch.Tensor, torch.Tensor]:
    """(observation [N, F], frame [N, D, D]) of every agent; see the module docstring.

    Args:
        state: ``FlockState`` (pos, vel [N, D]).
        sums: [2, N, 2D+1] sums of ``neural_kernels(rules)`` (``flock.step.neighbor_sums``).
        params: ``Params`` of a neural scenario (``params.scenario.rules`` is ``NeuralRules``).
    """
    rules = params.scenario.rules
    pos, vel = state.pos, state.vel
    dim = pos.shape[1]
    max_speed = params.base_limits["max_speed"]
    view, sep = sums[0], sums[1]
    n_view, n_sep = view[:, -1:], sep[:, -1:]
    safe = torch.where(n_view > 0, n_view, torch.ones_like(n_view))
    seen = n_view > 0
    zero = torch.zeros_like(pos)
    offset = torch.where(seen, view[:, :dim] / safe - pos, zero) / rules.view_radius
    rel_vel = torch.where(seen, view[:, dim:2 * dim] / safe - vel, zero) / max_speed
    away = (pos * n_sep - sep[:, :dim]) * rules.separation_radius
    away = away / (1.0 + torch.linalg.vector_norm(away, dim=-1, keepdim=True))
    columns = [offset, rel_vel, away]
    if has_walls(params.world):
        columns.append(_wall_proximity(pos, params.world, rules.view_radius))
    frame = agent_frame(vel, columns)
    local = [torch.einsum("nij,nj->ni", frame, c) for c in columns]
    speed = torch.linalg.vector_norm(vel, dim=-1, keepdim=True) / max_speed
    obs = torch.cat(local[:3] + [n_view / (1 + n_view), n_sep / (1 + n_sep), speed] + local[3:], dim=1)
    return obs, frame


def observe(state, sums: torch.Tensor, params) -> torch.Tensor:
    """[N, F] observation of every agent (training and stepping share it); see the module docstring."""
    return observe_with_frame(state, sums, params)[0]


# ---------------------------------------------------------------- networks and weights


def build_mlp(in_features: int, hidden: list[int], out_features: int, activation: str = "relu") -> nn.Sequential:
    """A stack of ``nn.Linear`` with ``activation`` between them (none after the last)."""
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation: expected one of {sorted(_ACTIVATIONS)}, got {activation!r}")
    sizes = [in_features, *hidden, out_features]
    layers: list[nn.Module] = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if k < len(sizes) - 2:
            layers.append(_ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def save_weights(path: str | Path, module: nn.Sequential, *, dims: int, walls: bool, hidden: list[int],
                 activation: str, extra: dict[str, str] | None = None) -> None:
    """Write ``module``'s state dict to a safetensors file with its architecture and observation
    version (``observation_of(module)``) in the metadata."""
    from safetensors.torch import save_file  # noqa: PLC0415

    meta = {"format": WEIGHTS_FORMAT, "observation": observation_of(module), "dims": str(dims), "walls": json.dumps(walls),
            "features": str(n_features(dims, walls)), "hidden": json.dumps(list(hidden)), "activation": activation}
    meta.update(extra or {})
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in module.state_dict().items()}
    save_file(tensors, str(path), metadata=meta)


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file; a ``WeightsError`` if it is not one."""
    from safetensors import safe_open  # noqa: PLC0415
    from safetensors.torch import load_file  # noqa: PLC0415

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return load_file(str(path)), meta
    except Exception as exc:  # noqa: BLE001  (safetensors raises its own SafetensorError, not exported everywhere)
        raise WeightsError("rules.model.weights", f"{path}: not a readable safetensors file ({exc})") from None


def load_weights(path: str | Path, scenario) -> nn.Sequential:
    """The network of a weights file, checked against ``scenario``'s rules and world.

    Raises:
        WeightsError: not a flock weights file, another observation version, dims or walls,
            an architecture other than ``rules.model`` asks for, or tensors of other shapes.
    """
    tensors, meta = read_weights(path)
    spec = scenario.rules.model
    if meta.get("format") != WEIGHTS_FORMAT:
        raise WeightsError("rules.model.weights", f"{path}: not a flock weights file (metadata format "
                                                  f"{meta.get('format')!r}, expected {WEIGHTS_FORMAT!r})")
    if meta.get("observation") not in OBS_VERSIONS:
        raise WeightsError("rules.model.weights", f"{path}: trained on observation {meta.get('observation')!r}, "
                                                  f"this flock observes {' or '.join(map(repr, OBS_VERSIONS))}; "
                                                  "retrain (flocksim train)")
    dims, walls = scenario.world.dims, scenario.world.boundary in ("soft", "reflect")
    if meta.get("dims") != str(dims) or meta.get("walls") != json.dumps(walls):
        raise WeightsError("rules.model.weights", f"{path}: trained in a {meta.get('dims')}D world with walls "
                                                  f"{meta.get('walls')}; the scenario is {dims}D with walls "
                                                  f"{json.dumps(walls)} (world.dims / world.boundary)")
    try:
        hidden, activation = json.loads(meta["hidden"]), meta["activation"]
    except (KeyError, ValueError):
        raise WeightsError("rules.model.weights", f"{path}: metadata without hidden / activation") from None
    for key, want, got in (("hidden", spec.hidden, hidden), ("activation", spec.activation, activation)):
        if want is not None and want != got:
            raise WeightsError(f"rules.model.{key}", f"the scenario asks for {key} {want!r}, the weights file "
                                                     f"{path} holds {got!r}; make them agree")
    if activation not in _ACTIVATIONS:
        raise WeightsError("rules.model.weights", f"{path}: activation {activation!r} is not one of "
                                                  f"{sorted(_ACTIVATIONS)}")
    module = build_mlp(n_features(dims, walls), hidden, dims, activation)
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    got_shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    if expected != got_shapes:
        raise WeightsError("rules.model.weights", f"{path}: tensors {got_shapes} do not match the architecture "
                                                  f"(hidden {hidden}, {activation}): expected {expected}")
    module.load_state_dict(tensors)
    module.flock_observation = meta["observation"]
    return module.eval()


# ---------------------------------------------------------------- the rule


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
        try:
            load_weights(path, sc)
        except WeightsError as exc:
            problems.append((exc.key, str(exc)))
    return problems


@register_rule
class NeuralSteering(Rule):
    """``rules.formulation: neural``: ``module`` [N, F] -> [N, D] steers every agent in one call.

    Args:
        module: any ``torch.nn.Module`` mapping observations [N, F] to accelerations [N, D] in
            the agent frame, in units of max_force. None (the registry's way): the module
            attached to the scenario (``attach``), else the scenario's weights file.

        differentiable: run the module with autograd (training through the simulation);
            otherwise it runs under ``torch.inference_mode``.
        smooth: read the smooth channels (``SMOOTH_OBS_VERSION``); tags ``module`` with it. False:
            the module's own observation (``observation_of``; weights files record it).

    The module is moved to the state's device and dtype. What autograd sees (differentiable):
    the observation is built from the kernel sums and the agent's own state with differentiable
    ops only, so gradients reach the module's weights and, through the sums' position and
    velocity columns, every neighbor's position and velocity. Through the kernel weights
    themselves they flow only where the weights are smooth: triangular (smooth variant) and
    inverse-square channels, not flat ones (a flat weight's derivative is 0 except at the radius,
    where it is undefined), nor the field-of-view cut; who is inside a radius is piecewise constant.
    The speed limits, the wrap and the ``max_force`` clip are differentiable almost everywhere.
    """

    name = "neural"
    update_kind = "accel"
    is_boid = True

    @classmethod
    def check(cls, scenario):
        return check_neural(scenario, scenario.base_dir())

    def __init__(self, module: nn.Module | None = None, *, differentiable: bool = False, smooth: bool = False):
        self.module = module
        self.differentiable = differentiable
        if smooth:
            if module is None:
                raise ValueError("NeuralSteering(smooth=True) needs the module it tags")
            module.flock_observation = SMOOTH_OBS_VERSION
        self._placed: tuple | None = None

    def attach(self, scenario):
        """Make ``scenario`` (a neural one) steer with this module; returns the scenario."""
        if not isinstance(scenario.rules, NeuralRules):
            raise ScenarioError(f"rules.formulation: NeuralSteering needs a neural scenario, got "
                                f"{scenario.rules.formulation!r}")
        scenario.rules._module = self.module
        return scenario

    def kernels(self, params):
        return neural_kernels(params.scenario.rules, observation_of(self._module(params)))

    def _module(self, params) -> nn.Module:
        """This rule's module, else the scenario's attached one, else its weights file's (cached)."""
        if self.module is not None:
            return self.module
        rules = params.scenario.rules
        if rules._module is None:
            rules._module = load_weights(params.scenario.base_dir() / rules.model.weights, params.scenario)
        return rules._module

    def resolve(self, params, like: torch.Tensor) -> nn.Module:
        """The module, on ``like``'s device and dtype."""
        module = self._module(params)
        key = (id(module), like.device, like.dtype)
        if self._placed != key:
            module.to(device=like.device, dtype=like.dtype)
            self._placed = key
        return module

    def update(self, state, sums, params):
        obs, frame = observe_with_frame(state, sums, params)
        module = self.resolve(params, obs)
        if self.differentiable:
            out = module(obs)
        else:
            with torch.inference_mode():
                out = module(obs)
            out = out.clone()
        if out.shape != state.pos.shape:
            raise ScenarioError(f"rules.model: the network maps [N, {obs.shape[1]}] to {list(out.shape)}, "
                                f"expected [N, {state.pos.shape[1]}] (one acceleration per agent)")
        max_force = params.scenario.rules.max_force
        if max_force is None:
            max_force = params.agent_limits(state.group)["max_force"]
        accel = torch.einsum("nji,nj->ni", frame, out) * max_force
        return Update("accel", clip_norm(accel, max_force))


__all__ = ["NeuralSteering", "OBS_VERSION", "OBS_VERSIONS", "SMOOTH_OBS_VERSION", "WeightsError", "agent_frame", "build_mlp", "load_weights",
           "n_features", "neural_kernels", "observation_of", "observe", "observe_with_frame", "read_weights", "save_weights"]
