"""flock: GPU-first flocking and mean shift on PyTorch tensors.

    import flock
    sim = flock.Simulation.from_scenario("scenarios/boids_seed.yaml")
    sim.step(100); sim.state.pos; sim.metrics
"""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .errors import ScenarioError
from .kernels import Kernel
from .meanshift import MeanShift, estimate_bandwidth, mean_shift
from .neighbors import reduce_neighbors
from .scenario import Scenario, load_scenario, validate_scenario
from .simulation import Simulation
from .state import FlockState
from .world import World

__version__ = "0.1.0"

__all__ = ["CheckpointError", "FlockState", "Kernel", "MeanShift", "Scenario", "ScenarioError", "Simulation", "World",
           "estimate_bandwidth", "load_checkpoint", "mean_shift", "load_scenario", "reduce_neighbors", "save_checkpoint", "validate_scenario",
           "__version__"]
