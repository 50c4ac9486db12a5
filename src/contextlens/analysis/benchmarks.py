"""Reports of the standard evaluations run on one file: STS Benchmark and Word in Context."""

from dataclasses import dataclass
from pathlib import Path

from ..io.benchmarks import read_sts, read_wic
from .sts import evaluate_sts
from .wic import evaluate_wic


@dataclass
class StsReport:
    """Spearman ρ and Pearson r of embedding cosine against the human scores of `pairs` pairs."""

    model: str
    file: str
    pairs: int
    spearman: float
    pearson: float


def sts_report(model, file: Path) -> StsReport:
    return StsReport(model.name, str(file), **evaluate_sts(model, read_sts(file)))


@dataclass
class WicReport:
    """Word in Context per layer: a cosine threshold chosen on the `dev` pairs, accuracy on the
    `test` pairs (`layers`: {layer, threshold, dev, test}), the best layer on dev and the
    majority-class baseline."""

    model: str
    data: str
    pairs: int
    dev: int
    test: int
    layers: list[dict]
    best_layer: int
    best_test: float
    majority_test: float


def wic_report(model, data: Path, gold: Path, limit: int | None = None) -> WicReport:
    """The first `limit` pairs (all if None) of a WiC data file and its gold file."""
    return WicReport(model.name, str(data), **evaluate_wic(model, read_wic(data, gold)[:limit]))
