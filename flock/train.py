"""Training neural steering by imitation: behaviour cloning of a teacher formulation, then DAgger.

    flocksim train scenarios/boids_torus.yaml --teacher reynolds --out steer.safetensors

1. The teacher (``seed``, ``reynolds``, ``mesa`` or ``netlogo`` on the scenario's boid rules)
   moves an ensemble of seeds (one batched state, on the device). Every ``every`` steps each
   agent's observation (``flock.neural.observe`` with the student's radii) and the teacher's
   acceleration from its rule alone (a 'vel' rule's (v' - v) / dt), rotated into the agent
   frame and divided by the output unit, are recorded.
2. An MLP is fitted to them (mean squared error; ``adam``, ``sgd`` or ``path-sgd``,
   ``flock.pathsgd.PathSGD``).
3. DAgger rounds: the student steers the ensemble, the teacher labels the states it visits,
   the data set grows and the network is fitted again.

The output unit (the student's ``rules.max_force``) is the largest teacher acceleration of the
cloning data. Deterministic for a seed on the CPU. Writes the weights (safetensors, the
architecture in the metadata), a ready scenario YAML that uses them and, when matplotlib is
installed, a loss-curve PNG.

Training through the simulation (``--objective order|spacing``, ``train_through_sim``):

    flocksim train scenarios/boids_torus.yaml --objective order --set agents.count=100 \
        --set "world.size=[60, 60]" --out order.safetensors

The network steers from the smooth observation (``flock.neural.SMOOTH_OBS_VERSION``, two
triangular channels) and every episode rolls an ensemble of seeds from its initial (disordered)
state through ``flock.step.step`` on the dense backend with autograd on. The loss of each
truncated window of ``window`` steps (the state is detached between windows, so memory holds
one window's graph) is the mean over its steps of

    order     1 - polarization, polarization = |mean_i unit(v_i)| per member
    spacing   ((d_nn - target) / target)^2 averaged over agents, d_nn the nearest-neighbor distance
    + collision_weight * mean_i sum_j max(0, 1 - d_ij / r_c)^2   (r_c: half the separation radius)

backpropagated through the steps into the network (see ``flock.neural.NeuralSteering`` for what
the gradients flow through). Held-out seeds then measure the objective of the trained and of the
untrained network over ``eval_steps`` steps.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from .errors import ScenarioError
from .neural import NeuralSteering, build_mlp, n_features, observe_with_frame, save_weights
from .noise import NoiseStream
from .params import build_params
from .scenario import BoidRules, Scenario
from .scenario_schema import NeuralRules
from .simulation import Simulation
from .species import initial_group_state
from .state import FlockState
from .step import neighbor_sums, step
from .vectors import unit as unit_vectors
from .world import minimum_image

TEACHERS = ("seed", "reynolds", "mesa", "netlogo")
OPTIMIZERS = ("adam", "sgd", "path-sgd")
OBJECTIVES = ("order", "spacing")


@dataclass
class TrainConfig:
    """Options of ``train`` (the CLI's flags)."""

    teacher: str = "reynolds"
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    activation: str = "relu"
    optimizer: str = "adam"
    lr: float | None = None
    epochs: int = 30
    rounds: int = 2
    seeds: int = 4
    steps: int = 300
    every: int = 5
    per_step: int = 500
    batch: int = 512
    seed: int = 0
    device: str = "cpu"
    backend: str = "auto"
    progress: bool = True


@dataclass
class TrainResult:
    module: torch.nn.Sequential
    student: dict
    unit: float
    losses: list[float]
    held_out_corr: float
    samples: int


def teacher_scenario(scenario: Scenario, teacher: str) -> Scenario:
    """``scenario`` moved by ``teacher`` (its boid rules, formulation replaced)."""
    if teacher not in TEACHERS:
        raise ScenarioError(f"--teacher: expected one of {', '.join(TEACHERS)}, got {teacher!r}")
    if not isinstance(scenario.rules, BoidRules):
        raise ScenarioError(f"{scenario.source or '<scenario>'}: rules.formulation: a teacher needs boid rules "
                            f"(cohesion, alignment, separation), got {scenario.rules.formulation}")
    if scenario.species is not None or scenario.interactions is not None:
        raise ScenarioError(f"{scenario.source or '<scenario>'}: species: neural steering is one group; "
                            "train on a scenario without species / interactions")
    from .scenario import validate_scenario  # noqa: PLC0415

    data = scenario.to_dict()
    data["rules"]["formulation"] = teacher
    return validate_scenario(data, source=scenario.source)


def student_data(teacher: Scenario, *, weights: str, hidden: list[int], activation: str, unit: float) -> dict:
    """Plain data of the neural scenario that imitates ``teacher`` (radii from its boid rules)."""
    data = teacher.to_dict()
    rules = teacher.rules
    neural = {"formulation": "neural", "model": {"weights": weights, "hidden": list(hidden), "activation": activation},
              "view_radius": max(rules.cohesion.radius, rules.alignment.radius),
              "separation_radius": rules.separation.radius, "field_of_view": rules.field_of_view,
              "max_force": float(unit)}
    for key in ("wander", "avoidance"):
        if key in data["rules"]:
            neural[key] = data["rules"][key]
    data["rules"] = neural
    data["name"] = f"neural_{teacher.name or 'flock'}"
    data["description"] = f"A network trained by imitation of the {rules.formulation} rules (flocksim train)."
    return data


def _student(data: dict, module) -> Scenario:
    """The student scenario with ``module`` attached (not validated against a weights file)."""
    sc = Scenario.model_validate(data)
    NeuralSteering(module).attach(sc)
    return sc


def _teacher_accel(state, params, backend) -> torch.Tensor:
    update = params.rule.update(state, neighbor_sums(state, params, backend), params)
    return update.value if update.kind == "accel" else (update.value - state.vel) / params.dt


def collect(teacher: Scenario, student: Scenario, seeds: list[int], cfg: TrainConfig, *, drive_student: bool,
            unit: float | None, dtype=torch.float32, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(observations [M, F], teacher accelerations in the agent frame [M, D], raw units / ``unit``).

    The ensemble of ``seeds`` is moved by the teacher, or by the student when ``drive_student``.
    ``unit`` None: targets in world units (the caller picks the unit from them).
    """
    sim = Simulation(teacher, seeds=seeds, device=cfg.device, dtype=dtype, backend=cfg.backend)
    state, backend, b = sim.state, sim.backend, len(seeds)
    tparams = build_params(teacher, device=sim.device, dtype=sim.dtype, n_members=b)
    sparams = build_params(student, device=sim.device, dtype=sim.dtype, n_members=b)
    driver = sparams if drive_student else tparams
    obs_all, target_all = [], []
    with torch.no_grad():
        for k in range(cfg.steps):
            if k % cfg.every == 0:
                obs, frame = observe_with_frame(state, neighbor_sums(state, sparams, backend), sparams)
                accel = torch.einsum("nij,nj->ni", frame, _teacher_accel(state, tparams, backend))
                rows = torch.randperm(obs.shape[0], generator=gen)[:cfg.per_step * b].to(obs.device)
                obs_all.append(obs[rows].float().cpu())
                target_all.append(accel[rows].float().cpu())
            state = step(state, driver, backend, sim.noise, time=k * driver.dt)
    target = torch.cat(target_all)
    return torch.cat(obs_all), (target if unit is None else target / unit)


def make_optimizer(name: str, module: torch.nn.Sequential, lr: float | None) -> torch.optim.Optimizer:
    """``adam`` (lr 1e-3), ``sgd`` (lr 0.05, momentum 0.9) or ``path-sgd`` (lr 0.05) over ``module``."""
    if name == "adam":
        return torch.optim.Adam(module.parameters(), lr=lr or 1e-3)
    if name == "sgd":
        return torch.optim.SGD(module.parameters(), lr=lr or 0.05, momentum=0.9)
    if name == "path-sgd":
        from .pathsgd import PathSGD  # noqa: PLC0415

        return PathSGD(module, lr=lr or 0.05)
    raise ScenarioError(f"--optimizer: expected one of {', '.join(OPTIMIZERS)}, got {name!r}")


def fit(module, opt, obs, target, cfg: TrainConfig, gen: torch.Generator, bar=None) -> list[float]:
    """``cfg.epochs`` epochs of minibatch MSE; the mean loss of each epoch."""
    losses = []
    for _ in range(cfg.epochs):
        order = torch.randperm(obs.shape[0], generator=gen)
        total = 0.0
        for start in range(0, obs.shape[0], cfg.batch):
            idx = order[start:start + cfg.batch]
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(module(obs[idx]), target[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
        losses.append(total / obs.shape[0])
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4g}")
    return losses


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of the flattened tensors."""
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-300))


def train(scenario: Scenario, cfg: TrainConfig, *, weights_name: str = "steer.safetensors") -> TrainResult:
    """Behaviour cloning of ``cfg.teacher`` on ``scenario``, then ``cfg.rounds`` DAgger rounds."""
    from tqdm import tqdm  # noqa: PLC0415

    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    teacher = teacher_scenario(scenario, cfg.teacher)
    dim = teacher.world.dims
    walls = teacher.world.boundary in ("soft", "reflect")
    module = build_mlp(n_features(dim, walls), cfg.hidden, dim, cfg.activation)
    student = _student(student_data(teacher, weights=weights_name, hidden=cfg.hidden, activation=cfg.activation,
                                    unit=1.0), module)
    base = scenario.run.seed + 1000 * (cfg.seed + 1)
    seeds = list(range(base, base + cfg.seeds))
    obs, raw = collect(teacher, student, seeds, cfg, drive_student=False, unit=None, gen=gen)
    unit = float(torch.linalg.vector_norm(raw, dim=1).max())
    if not unit > 0:
        raise ScenarioError(f"{scenario.source or '<scenario>'}: the {cfg.teacher} teacher never accelerates "
                            "anyone in this scenario; nothing to imitate")
    target = raw / unit
    data = student_data(teacher, weights=weights_name, hidden=cfg.hidden, activation=cfg.activation, unit=unit)
    student = _student(data, module)
    opt = make_optimizer(cfg.optimizer, module, cfg.lr)
    losses: list[float] = []
    with tqdm(total=cfg.epochs * (cfg.rounds + 1), desc=f"train ({cfg.teacher})", disable=not cfg.progress,
              unit="epoch") as bar:
        losses += fit(module, opt, obs, target, cfg, gen, bar)
        for r in range(cfg.rounds):
            more_obs, more_target = collect(teacher, student, [s + 100 * (r + 1) for s in seeds], cfg,
                                            drive_student=True, unit=unit, gen=gen)
            obs, target = torch.cat([obs, more_obs]), torch.cat([target, more_target])
            losses += fit(module, opt, obs, target, cfg, gen, bar)
    held = [base + 10_000 + k for k in range(2)]
    test_obs, test_target = collect(teacher, student, held, cfg, drive_student=False, unit=unit, gen=gen)
    with torch.no_grad():
        corr = correlation(module(test_obs), test_target)
    return TrainResult(module=module.eval(), student=data, unit=unit, losses=losses, held_out_corr=corr,
                       samples=int(obs.shape[0]))


def write_outputs(result: TrainResult, cfg: TrainConfig, out: Path) -> list[Path]:
    """The weights file, the scenario YAML beside it, and the loss curve PNG (if matplotlib is there)."""
    dim = result.student["world"]["dims"]
    walls = result.student["world"].get("boundary", "wrap") in ("soft", "reflect")
    save_weights(out, result.module, dims=dim, walls=walls, hidden=cfg.hidden, activation=cfg.activation,
                 extra={"teacher": cfg.teacher, "optimizer": cfg.optimizer, "seed": str(cfg.seed),
                        "unit": repr(result.unit), "held_out_corr": f"{result.held_out_corr:.4f}"})
    yaml_path = out.with_suffix(".yaml")
    data = dict(result.student)
    data["rules"] = dict(data["rules"], model=dict(data["rules"]["model"], weights=out.name))
    yaml_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return [out, yaml_path] + _loss_png(result.losses, out, xlabel="epoch (grey: DAgger rounds)",
                                        ylabel="MSE (agent frame, units of max_force)",
                                        title=f"imitating {cfg.teacher}: held-out corr {result.held_out_corr:.3f}",
                                        rules=[r * cfg.epochs + 0.5 for r in range(1, cfg.rounds + 1)])


def _loss_png(losses: list[float], out: Path, *, xlabel: str, ylabel: str, title: str, rules: list[float]
              ) -> list[Path]:
    """``[OUT_loss.png]``, the loss curve (log scale when every loss is positive); [] without matplotlib."""
    try:
        os.environ.setdefault("MPLBACKEND", "Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return []
    fig, ax = plt.subplots(figsize=(5, 3.2))
    (ax.semilogy if all(v > 0 for v in losses) else ax.plot)(range(1, len(losses) + 1), losses)
    for x in rules:
        ax.axvline(x, color="0.7", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    png = out.with_name(out.stem + "_loss.png")
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return [png]


# ---------------------------------------------------------------- training through the simulation


@dataclass
class SimTrainConfig:
    """Options of ``train_through_sim`` (``flocksim train --objective``)."""

    objective: str = "order"
    hidden: list[int] = field(default_factory=lambda: [32, 32])
    activation: str = "relu"
    optimizer: str = "adam"
    lr: float | None = None
    epochs: int = 30            # episodes
    steps: int = 60             # steps per episode
    window: int = 10            # truncated BPTT window (steps between detaches)
    seeds: int = 2              # ensemble members per episode
    spacing: float | None = None          # target nearest-neighbor distance (default: separation radius)
    collision_weight: float = 1.0
    clip: float = 1.0           # gradient norm clip
    eval_seeds: int = 5
    eval_steps: int = 200
    seed: int = 0
    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    progress: bool = True


@dataclass
class SimTrainResult:
    module: torch.nn.Sequential
    student: dict
    losses: list[float]
    held_out: dict          # {"trained": metrics, "untrained": metrics} over the held-out seeds
    seeds: list[int]        # the held-out seeds


def sim_student_data(scenario: Scenario, *, weights: str, hidden: list[int], activation: str) -> dict:
    """Plain data of the neural scenario trained through ``scenario`` (boid rules or neural rules)."""
    if scenario.species is not None or scenario.interactions is not None:
        raise ScenarioError(f"{scenario.source or '<scenario>'}: species: neural steering is one group; "
                            "train on a scenario without species / interactions")
    if isinstance(scenario.rules, NeuralRules):
        data = scenario.to_dict()
        data["rules"]["model"] = {"weights": weights, "hidden": list(hidden), "activation": activation}
        return data
    if not isinstance(scenario.rules, BoidRules):
        raise ScenarioError(f"{scenario.source or '<scenario>'}: rules.formulation: --objective needs boid or "
                            f"neural rules (their radii), got {scenario.rules.formulation}")
    if scenario.agents.max_speed is None or scenario.agents.max_force is None:
        raise ScenarioError(f"{scenario.source or '<scenario>'}: agents.max_speed / agents.max_force: both are "
                            "needed (the network's observation and output units)")
    data = student_data(scenario, weights=weights, hidden=hidden, activation=activation,
                        unit=scenario.agents.max_force)
    data["description"] = "A network trained through the simulation (flocksim train --objective)."
    return data


def _member_pairs(pos: torch.Tensor, members: int, period) -> torch.Tensor:
    """[B, N, N] distances within each member (the diagonal +inf)."""
    p = pos.view(members, -1, pos.shape[1])
    offset = minimum_image(p[:, None, :, :] - p[:, :, None, :], period)
    n = p.shape[1]
    eye = torch.eye(n, dtype=torch.bool, device=pos.device)
    # the diagonal's zero offsets would give NaN gradients through the norm: put ones there
    offset = torch.where(eye[None, :, :, None], torch.ones_like(offset), offset)
    dist = torch.linalg.vector_norm(offset, dim=-1)
    return torch.where(eye[None], torch.full_like(dist, math.inf), dist)


def polarization_per_member(vel: torch.Tensor, members: int) -> torch.Tensor:
    """[B] |mean_i unit(v_i)| of each member (differentiable)."""
    return torch.linalg.vector_norm(unit_vectors(vel).view(members, -1, vel.shape[1]).mean(1), dim=-1)


def objective_terms(state: FlockState, params, cfg: SimTrainConfig, target: float) -> dict[str, torch.Tensor]:
    """Per-member [B] figures of one state: polarization, mean nn distance, spacing loss, collision penalty."""
    b = params.n_members
    dist = _member_pairs(state.pos, b, params.world.period(state.pos))
    nn_dist = dist.min(-1).values                                             # [B, N]
    r_c = 0.5 * params.scenario.rules.separation_radius
    collide = (torch.clamp_min(1.0 - dist / r_c, 0.0) ** 2).sum(-1).mean(-1)   # [B]
    return {"polarization": polarization_per_member(state.vel, b), "nn_distance": nn_dist.mean(-1),
            "spacing_loss": (((nn_dist - target) / target) ** 2).mean(-1), "collision": collide,
            "collisions": (dist < r_c).sum((-1, -2)) // 2}


def _loss(terms: dict[str, torch.Tensor], cfg: SimTrainConfig) -> torch.Tensor:
    main = 1.0 - terms["polarization"] if cfg.objective == "order" else terms["spacing_loss"]
    return (main + cfg.collision_weight * terms["collision"]).mean()


def _sim_params(student: Scenario, module, members: int, cfg: SimTrainConfig, *, differentiable: bool):
    import dataclasses  # noqa: PLC0415

    rule = NeuralSteering(module, differentiable=differentiable, smooth=True)
    params = build_params(student, device=cfg.device, dtype=cfg.dtype, n_members=members)
    return dataclasses.replace(params, rule=rule, kernels=tuple(rule.kernels(params)))


def initial_states(student: Scenario, seeds: list[int], cfg: SimTrainConfig) -> FlockState:
    """The members' initial states (the scenario's initial conditions, one seed each) stacked."""
    parts = [initial_group_state(student, seed=s, device=cfg.device, dtype=cfg.dtype)[0] for s in seeds]
    return FlockState(pos=torch.cat([p.pos for p in parts]), vel=torch.cat([p.vel for p in parts]),
                      group=torch.cat([p.group for p in parts]))


def rollout_loss(module, student: Scenario, seeds: list[int], cfg: SimTrainConfig, target: float, opt=None,
                 noise: NoiseStream | None = None) -> float:
    """One episode of ``cfg.steps`` steps; with ``opt``, a gradient step after every window. Mean loss.

    ``noise``: the wander noise (default: a fresh stream of the members' ``seeds``).
    """
    params = _sim_params(student, module, len(seeds), cfg, differentiable=True)
    state = initial_states(student, seeds, cfg)
    noise = NoiseStream(seeds, state.pos.device) if noise is None else noise
    total, windows = 0.0, 0
    for start in range(0, cfg.steps, cfg.window):
        loss = torch.zeros((), dtype=cfg.dtype, device=state.pos.device)
        k = min(cfg.window, cfg.steps - start)
        for t in range(start, start + k):
            state = step(state, params, "dense", noise, time=t * params.dt)
            loss = loss + _loss(objective_terms(state, params, cfg, target), cfg) / k
        if opt is not None:
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.clip)
            opt.step()
        state = FlockState(pos=state.pos.detach(), vel=state.vel.detach(), group=state.group)
        total += float(loss.detach())
        windows += 1
    return total / windows


def evaluate(module, student: Scenario, seeds: list[int], cfg: SimTrainConfig, target: float) -> dict:
    """Figures over ``cfg.eval_steps`` steps of each held-out seed (no gradients): means over the seeds."""
    params = _sim_params(student, module, len(seeds), cfg, differentiable=False)
    state = initial_states(student, seeds, cfg)
    noise = NoiseStream(seeds, state.pos.device)
    with torch.no_grad():
        first = objective_terms(state, params, cfg, target)
        for t in range(cfg.eval_steps):
            state = step(state, params, "dense", noise, time=t * params.dt)
        last = objective_terms(state, params, cfg, target)
    finite = bool(torch.isfinite(state.pos).all() and torch.isfinite(state.vel).all())
    return {"polarization_start": float(first["polarization"].mean()),
            "polarization_end": float(last["polarization"].mean()),
            "polarization_end_min": float(last["polarization"].min()),
            "nn_distance_start": float(first["nn_distance"].mean()),
            "nn_distance_end": float(last["nn_distance"].mean()),
            "spacing_loss_end": float(last["spacing_loss"].mean()),
            "collisions_end": int(last["collisions"].sum()), "finite": finite}


def train_through_sim(scenario: Scenario, cfg: SimTrainConfig, *, weights_name: str = "steer.safetensors"
                      ) -> SimTrainResult:
    """Backpropagation through time through ``flock.step.step`` on ``cfg.objective``; see the module docstring."""
    from tqdm import tqdm  # noqa: PLC0415

    if cfg.objective not in OBJECTIVES:
        raise ScenarioError(f"--objective: expected one of {', '.join(OBJECTIVES)}, got {cfg.objective!r}")
    torch.manual_seed(cfg.seed)
    data = sim_student_data(scenario, weights=weights_name, hidden=cfg.hidden, activation=cfg.activation)
    student = Scenario.model_validate(data)
    target = float(cfg.spacing if cfg.spacing is not None else student.rules.separation_radius)
    dim, walls = student.world.dims, student.world.boundary in ("soft", "reflect")
    module = build_mlp(n_features(dim, walls), cfg.hidden, dim, cfg.activation).to(cfg.dtype)
    NeuralSteering(module, smooth=True).attach(student)
    untrained = build_mlp(n_features(dim, walls), cfg.hidden, dim, cfg.activation).to(cfg.dtype)
    untrained.load_state_dict(module.state_dict())
    opt = make_optimizer(cfg.optimizer, module, cfg.lr)
    base = scenario.run.seed + 1000 * (cfg.seed + 1)
    losses = []
    with tqdm(total=cfg.epochs, desc=f"train ({cfg.objective})", disable=not cfg.progress, unit="episode") as bar:
        for e in range(cfg.epochs):
            seeds = [base + e * cfg.seeds + k for k in range(cfg.seeds)]
            losses.append(rollout_loss(module, student, seeds, cfg, target, opt))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4g}")
    held = [base + 500_000 + k for k in range(cfg.eval_seeds)]
    module.eval()
    figures = {"trained": evaluate(module, student, held, cfg, target),
               "untrained": evaluate(untrained, student, held, cfg, target), "target_spacing": target}
    return SimTrainResult(module=module, student=data, losses=losses, held_out=figures, seeds=held)


def write_sim_outputs(result: SimTrainResult, cfg: SimTrainConfig, out: Path) -> list[Path]:
    """Weights (smooth observation), the scenario YAML beside them, the loss curve PNG (with matplotlib)."""
    dim = result.student["world"]["dims"]
    walls = result.student["world"].get("boundary", "wrap") in ("soft", "reflect")
    save_weights(out, result.module, dims=dim, walls=walls, hidden=cfg.hidden, activation=cfg.activation,
                 extra={"objective": cfg.objective, "optimizer": cfg.optimizer, "seed": str(cfg.seed),
                        "window": str(cfg.window), "steps": str(cfg.steps), "epochs": str(cfg.epochs),
                        "held_out": json.dumps(result.held_out), "held_out_seeds": json.dumps(result.seeds)})
    yaml_path = out.with_suffix(".yaml")
    data = dict(result.student)
    data["rules"] = dict(data["rules"], model=dict(data["rules"]["model"], weights=out.name))
    yaml_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return [out, yaml_path] + _loss_png(result.losses, out, xlabel="episode",
                                        ylabel=f"{cfg.objective} loss (+ collisions)",
                                        title=f"through the simulation: {cfg.objective}", rules=[])


def add_train_parser(sub) -> None:
    """The ``flocksim train`` subcommand."""
    p = sub.add_parser("train", help="train neural steering by imitating a formulation or through the simulation",
                       description="Roll a teacher formulation out on the scenario (an ensemble of seeds), fit a "
                                   "network to its accelerations, refine it by DAgger; or, with --objective, train "
                                   "it by backpropagation through time through the flock's own steps. Writes the "
                                   "weights (safetensors), a scenario YAML that uses them and a loss curve.")
    p.add_argument("scenario", help="a scenario with boid rules (cohesion, alignment, separation); with "
                                    "--objective also a neural one (its radii)")
    p.add_argument("--teacher", default="reynolds", choices=TEACHERS,
                   help="the formulation the network learns to imitate (default: reynolds)")
    p.add_argument("--objective", default=None, choices=OBJECTIVES,
                   help="train through the simulation on polarization (order) or a nearest-neighbor spacing, "
                        "plus a collision penalty, instead of imitating --teacher")
    p.add_argument("--out", default="steer.safetensors", help="weights file (.safetensors)")
    p.add_argument("--optimizer", default="adam", choices=OPTIMIZERS,
                   help="adam, sgd, or path-sgd (Neyshabur et al. 2015, rescaling invariant)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: adam 1e-3, sgd / path-sgd 0.05)")
    p.add_argument("--epochs", type=int, default=30, help="epochs per fit (cloning and each DAgger round); "
                                                          "with --objective: episodes")
    p.add_argument("--rounds", type=int, default=2, help="DAgger rounds after behaviour cloning")
    p.add_argument("--seeds", type=int, default=None, help="ensemble members per rollout / episode (4; "
                                                           "--objective 2)")
    p.add_argument("--steps", type=int, default=None, help="steps per rollout / episode (300; --objective 60)")
    p.add_argument("--every", type=int, default=5, help="record every K steps")
    p.add_argument("--window", type=int, default=10, help="--objective: truncated BPTT window, steps")
    p.add_argument("--spacing", type=float, default=None, help="--objective spacing: target nearest-neighbor "
                                                               "distance (default: the separation radius)")
    p.add_argument("--collision-weight", type=float, default=1.0, help="--objective: weight of the collision "
                                                                       "penalty")
    p.add_argument("--eval-seeds", type=int, default=5, help="--objective: held-out seeds measured after training")
    p.add_argument("--eval-steps", type=int, default=200, help="--objective: steps of each held-out run")
    p.add_argument("--hidden", default=None, help="hidden layer widths, comma-separated (64,64; --objective 32,32)")
    p.add_argument("--activation", default="relu", choices=["relu", "tanh", "identity"],
                   help="activation between the linear layers (path-sgd needs relu or identity)")
    p.add_argument("--seed", type=int, default=0, help="seed of the rollouts and the network's initial weights")
    p.add_argument("--device", default="cpu", help="cpu | cuda (where rollouts and training run)")
    p.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a scenario value (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    import sys  # noqa: PLC0415

    from .scenario import load_scenario  # noqa: PLC0415

    out = Path(args.out)
    sim = args.objective is not None
    defaults = {"seeds": 2, "steps": 60, "hidden": "32,32"} if sim else {"seeds": 4, "steps": 300, "hidden": "64,64"}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    try:
        if out.suffix != ".safetensors":
            raise ScenarioError(f"--out: expected a .safetensors file, got {args.out!r}")
        try:
            hidden = [int(h) for h in args.hidden.split(",") if h.strip()]
        except ValueError:
            raise ScenarioError(f"--hidden: expected widths like 64,64, got {args.hidden!r}") from None
        for name in ("epochs", "seeds", "steps", "every", "window", "eval_seeds", "eval_steps"):
            if getattr(args, name) < 1:
                raise ScenarioError(f"--{name.replace('_', '-')}: expected at least 1, got {getattr(args, name)}")
        if args.spacing is not None and not args.spacing > 0:
            raise ScenarioError(f"--spacing: expected a distance > 0, got {args.spacing}")
        if not args.collision_weight >= 0:
            raise ScenarioError(f"--collision-weight: expected >= 0, got {args.collision_weight}")
        if sim:
            return _cmd_train_sim(args, out, hidden)
        cfg = TrainConfig(teacher=args.teacher, hidden=hidden, activation=args.activation, optimizer=args.optimizer,
                          lr=args.lr, epochs=args.epochs, rounds=max(args.rounds, 0), seeds=args.seeds,
                          steps=args.steps, every=args.every, seed=args.seed, device=args.device,
                          progress=not args.quiet)
        scenario = load_scenario(args.scenario, overrides=args.set)
        result = train(scenario, cfg, weights_name=out.name)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    written = write_outputs(result, cfg, out)
    print(f"trained on {result.samples} samples; final loss {result.losses[-1]:.4g}; held-out correlation with "
          f"the {cfg.teacher} teacher {result.held_out_corr:.3f}; output unit (max_force) {result.unit:.4g}")
    for path in written:
        print("wrote", path)
    if not math.isfinite(result.losses[-1]):
        return 1
    return 0


def _cmd_train_sim(args, out: Path, hidden: list[int]) -> int:
    from .scenario import load_scenario  # noqa: PLC0415

    cfg = SimTrainConfig(objective=args.objective, hidden=hidden, activation=args.activation,
                         optimizer=args.optimizer, lr=args.lr, epochs=args.epochs, steps=args.steps,
                         window=args.window, seeds=args.seeds, spacing=args.spacing,
                         collision_weight=args.collision_weight, eval_seeds=args.eval_seeds,
                         eval_steps=args.eval_steps, seed=args.seed, device=args.device, progress=not args.quiet)
    scenario = load_scenario(args.scenario, overrides=args.set)
    result = train_through_sim(scenario, cfg, weights_name=out.name)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = write_sim_outputs(result, cfg, out)
    t, u = result.held_out["trained"], result.held_out["untrained"]
    print(f"trained {cfg.epochs} episodes of {cfg.steps} steps (windows of {cfg.window}); final loss "
          f"{result.losses[-1]:.4g}")
    print(f"held-out seeds {result.seeds}, {cfg.eval_steps} steps: polarization {t['polarization_start']:.3f} -> "
          f"{t['polarization_end']:.3f} (untrained net: -> {u['polarization_end']:.3f}); mean nn distance "
          f"{t['nn_distance_start']:.3f} -> {t['nn_distance_end']:.3f} (untrained: -> {u['nn_distance_end']:.3f}, "
          f"target {result.held_out['target_spacing']:.3g}); collisions {t['collisions_end']} "
          f"(untrained {u['collisions_end']})")
    for path in written:
        print("wrote", path)
    return 0 if all(math.isfinite(v) for v in result.losses) and t["finite"] else 1


__all__ = ["OBJECTIVES", "OPTIMIZERS", "SimTrainConfig", "SimTrainResult", "TEACHERS", "TrainConfig", "TrainResult", "add_train_parser", "cmd_train", "collect",
           "correlation", "evaluate", "fit", "make_optimizer", "objective_terms", "polarization_per_member",
           "rollout_loss", "sim_student_data", "student_data", "teacher_scenario", "train", "train_through_sim", "write_outputs", "write_sim_outputs"]
