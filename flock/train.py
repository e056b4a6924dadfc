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
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from .errors import ScenarioError
from .neural import NeuralSteering, build_mlp, n_features, observe_with_frame, save_weights
from .params import build_params
from .scenario import BoidRules, Scenario
from .simulation import Simulation
from .step import neighbor_sums, step

TEACHERS = ("seed", "reynolds", "mesa", "netlogo")
OPTIMIZERS = ("adam", "sgd", "path-sgd")


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
    step_gen = torch.Generator(device=sim.device).manual_seed(cfg.seed)
    obs_all, target_all = [], []
    with torch.no_grad():
        for k in range(cfg.steps):
            if k % cfg.every == 0:
                obs, frame = observe_with_frame(state, neighbor_sums(state, sparams, backend), sparams)
                accel = torch.einsum("nij,nj->ni", frame, _teacher_accel(state, tparams, backend))
                rows = torch.randperm(obs.shape[0], generator=gen)[:cfg.per_step * b].to(obs.device)
                obs_all.append(obs[rows].float().cpu())
                target_all.append(accel[rows].float().cpu())
            state = step(state, driver, backend, step_gen, time=k * driver.dt)
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
    written = [out, yaml_path]
    try:
        os.environ.setdefault("MPLBACKEND", "Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return written
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.semilogy(range(1, len(result.losses) + 1), result.losses)
    for r in range(1, cfg.rounds + 1):
        ax.axvline(r * cfg.epochs + 0.5, color="0.7", lw=0.8)
    ax.set_xlabel("epoch (grey: DAgger rounds)")
    ax.set_ylabel("MSE (agent frame, units of max_force)")
    ax.set_title(f"imitating {cfg.teacher}: held-out corr {result.held_out_corr:.3f}")
    fig.tight_layout()
    png = out.with_name(out.stem + "_loss.png")
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return written + [png]


def add_train_parser(sub) -> None:
    """The ``flocksim train`` subcommand."""
    p = sub.add_parser("train", help="train neural steering by imitating a formulation",
                       description="Roll a teacher formulation out on the scenario (an ensemble of seeds), fit a "
                                   "network to its accelerations, refine it by DAgger, and write the weights "
                                   "(safetensors), a scenario YAML that uses them and a loss curve.")
    p.add_argument("scenario", help="a scenario with boid rules (cohesion, alignment, separation)")
    p.add_argument("--teacher", default="reynolds", choices=TEACHERS,
                   help="the formulation the network learns to imitate (default: reynolds)")
    p.add_argument("--out", default="steer.safetensors", help="weights file (.safetensors)")
    p.add_argument("--optimizer", default="adam", choices=OPTIMIZERS,
                   help="adam, sgd, or path-sgd (Neyshabur et al. 2015, rescaling invariant)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: adam 1e-3, sgd / path-sgd 0.05)")
    p.add_argument("--epochs", type=int, default=30, help="epochs per fit (cloning and each DAgger round)")
    p.add_argument("--rounds", type=int, default=2, help="DAgger rounds after behaviour cloning")
    p.add_argument("--seeds", type=int, default=4, help="ensemble members per rollout")
    p.add_argument("--steps", type=int, default=300, help="steps per rollout")
    p.add_argument("--every", type=int, default=5, help="record every K steps")
    p.add_argument("--hidden", default="64,64", help="hidden layer widths, comma-separated")
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
    try:
        if out.suffix != ".safetensors":
            raise ScenarioError(f"--out: expected a .safetensors file, got {args.out!r}")
        try:
            hidden = [int(h) for h in args.hidden.split(",") if h.strip()]
        except ValueError:
            raise ScenarioError(f"--hidden: expected widths like 64,64, got {args.hidden!r}") from None
        for name in ("epochs", "seeds", "steps", "every"):
            if getattr(args, name) < 1:
                raise ScenarioError(f"--{name}: expected at least 1, got {getattr(args, name)}")
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


__all__ = ["OPTIMIZERS", "TEACHERS", "TrainConfig", "TrainResult", "add_train_parser", "cmd_train", "collect",
           "correlation", "fit", "make_optimizer", "student_data", "teacher_scenario", "train", "write_outputs"]
