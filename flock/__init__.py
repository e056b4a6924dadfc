"""flock: GPU-first flocking and mean shift on PyTorch tensors.

    import flock
    sim = flock.Simulation.from_scenario("scenarios/boids_seed.yaml")
    sim.step(100); sim.state.pos; sim.metrics
"""

import importlib
import importlib.util

# The public names, imported on first use (PEP 562): ``import flock`` and ``flocksim --help``
# then start without loading torch, h5py, safetensors or numba.
_EXPORTS = {
    "CheckpointError": "checkpoint", "load_checkpoint": "checkpoint", "save_checkpoint": "checkpoint",
    "ScenarioError": "errors", "Kernel": "kernels", "MeanShift": "meanshift", "estimate_bandwidth": "meanshift",
    "mean_shift": "meanshift",
    "reduce_neighbors": "neighbors", "Scenario": "scenario", "load_scenario": "scenario",
    "validate_scenario": "scenario", "Simulation": "simulation", "FlockState": "state", "World": "world",
    "EnsembleSimulation": "ensemble", "NeuralSteering": "neural",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        # a submodule used as an attribute after a bare ``import flock`` (flock.simulation.X)
        if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
            return importlib.import_module(f".{name}", __name__)
        raise AttributeError(f"module 'flock' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))


__version__ = "0.1.0"

__all__ = ["CheckpointError", "EnsembleSimulation", "FlockState", "Kernel", "MeanShift", "NeuralSteering", "Scenario", "ScenarioError", "Simulation", "World",
           "estimate_bandwidth", "load_checkpoint", "mean_shift", "load_scenario", "reduce_neighbors", "save_checkpoint", "validate_scenario",
           "__version__"]
