"""Boid rules a neighbor kernel can finish itself: the update written in the kernel's epilogue.

The Triton kernel (``triton_grid``) can turn each agent's sums into its update while they
are still in registers, so a boid step reads the state once and writes [N, D] instead of
[K, N, 2D+F+1] sums. Each channel then sums only the columns its rule reads. This module
is the table both sides share (no Triton import: the rules name their epilogue without
loading Triton).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Epilogue:
    """A boid rule finished inside the kernel: the kernel writes each query's update, not its sums.

    Attributes:
        rule: 'seed', 'reynolds' or 'mesa' (``EPILOGUES``), the channels in that rule's order.
        values: the rule's numbers, in the order ``EPILOGUES`` gives (Python floats; inf allowed).
    """

    rule: str
    values: tuple[float, ...]


# rule -> (RULE id in the kernel, its values' names, per channel (sums positions, sums velocities))
EPILOGUES = {
    "seed": (1, ("cohesion", "alignment", "separation", "max_force"), ((True, True), (True, False))),
    "reynolds": (2, ("cohesion", "alignment", "separation", "max_speed", "max_force"),
                 ((True, False), (False, True), (True, False))),
    "mesa": (3, ("cohere", "separate", "match", "speed"), ((True, True), (True, False))),
}


__all__ = ["EPILOGUES", "Epilogue"]
