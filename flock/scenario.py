"""Scenarios: YAML files loaded with ``yaml.safe_load`` and validated into typed models.

A scenario says what world the agents live in, how many there are and where they
start, which rules move them, and how the run goes. Every problem is a
``ScenarioError`` naming the file, the key path, the value and what was expected;
unknown keys suggest the closest known key. Nothing runs on a half-valid file.

This module is the public face; the work is split by job:

    scenario_schema   the pydantic models (every key, its type and range; see its docstring)
    scenario_errors   pydantic errors -> one message shape, did-you-mean for unknown keys
    scenario_checks   cross-field checks and ``validate_scenario``
    scenario_io       reading YAML, ``extends:``, ``--set`` overrides, ``set_path``, ``load_scenario``
    names             formulation, backend, boundary and device names, shared defaults
"""

from __future__ import annotations

from .names import CONSTANT_SPEED_FORMULATIONS, GAUSSIAN_CUT_BANDWIDTHS
from .scenario_checks import validate_scenario
from .scenario_io import apply_overrides, deep_merge, load_scenario, read_scenario_data, set_path
from .scenario_schema import (AgentsSpec, AttractorSpec, AvoidanceSpec, BlobsInit, BoidRules, ChaseSpec, CirclesRules,
                              FileInit, FleeSpec, InteractionsSpec, MeanShiftRules, MetricsSpec, NonNegFloat,
                              NormalInit, Obstacle, PlaneObstacle, PositionInit, PositiveFloat, RandomDirectionInit,
                              RenderSpec, RuleSpec, Rules, RunSpec, Scenario, SegmentObstacle, SpeciesSpec,
                              SphereObstacle, UniformInit, VelocityInit, WorldSpec, ZeroInit)

__all__ = ["AgentsSpec", "AttractorSpec", "AvoidanceSpec", "BlobsInit", "BoidRules", "CONSTANT_SPEED_FORMULATIONS",
           "ChaseSpec", "CirclesRules", "FileInit", "FleeSpec", "GAUSSIAN_CUT_BANDWIDTHS", "InteractionsSpec",
           "MeanShiftRules", "MetricsSpec", "NonNegFloat", "NormalInit", "Obstacle", "PlaneObstacle", "PositionInit",
           "PositiveFloat", "RandomDirectionInit", "RenderSpec", "RuleSpec", "Rules", "RunSpec", "Scenario",
           "SegmentObstacle", "SpeciesSpec", "SphereObstacle", "UniformInit", "VelocityInit", "WorldSpec", "ZeroInit",
           "apply_overrides", "deep_merge", "load_scenario", "read_scenario_data", "set_path", "validate_scenario"]
