"""Soft MoE (P3, Chung et al. 2024): the layer, Algorithm 1 expert selection, and P3's two experiments.

`python -m simulations.families.softmoe single-expert|expert-drop [--preset quick|paper] [--out DIR]`; the
output schema is in docs/softmoe.md (and its records in .schema). P3's Theorem 1 and Algorithm 1 on the
symbolic side: `theory.softmoe`.
"""

from .expert_drop import ExpertDropConfig, SoftMoEClassifier
from .layer import SoftMoE, SoftMoEOutput
from .selection import algorithm1_mask, combine_column_sums, random_mask
from .single_expert import SingleExpertConfig

__all__ = [
    "ExpertDropConfig",
    "SingleExpertConfig",
    "SoftMoE",
    "SoftMoEClassifier",
    "SoftMoEOutput",
    "algorithm1_mask",
    "combine_column_sums",
    "random_mask",
]
