"""Where chunks are embedded: in this process (`local`, the default) or on a Ray cluster (`ray`):
Ray Data `map_batches` over a pool of actors, each holding one loaded model. Both give unit
vectors in the order of the texts, in parts as they are made, so what consumes them (corpus
shards, an index build) is the same code whichever engine ran.

    for part in embedded(texts, model, Engine("ray", actors=2)):   # part: [rows, d] float32
        ...

Ray is an optional extra (`pip install 'contextlens[ray]'`). With no address, a Ray instance is
started on this machine for the job and stopped after it; one already started in this process
(`ray.init`) is used as it is. A killed actor is restarted by Ray and its batch run again.
"""

import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ContextlensError
from ..lm import LanguageModel

ENGINES = ("local", "ray")
OBJECT_STORE_BYTES = 200 * 1024**2  # a Ray started here keeps its shared memory small


@dataclass(frozen=True)
class Engine:
    name: str = "local"  # "local" | "ray"
    address: str | None = None  # a running Ray cluster (host:port, ray://host:port, auto)
    actors: int = 1  # Ray actors, one model each

    def __post_init__(self):
        if self.name not in ENGINES:
            raise ContextlensError(f"unknown engine {self.name!r}; use --engine local or ray")
        if not isinstance(self.actors, int) or self.actors < 1:
            raise ContextlensError(f"--actors must be 1 or more (got {self.actors})")
        if self.address is not None and self.name != "ray":
            raise ContextlensError("--address is the address of a Ray cluster; add --engine ray")

    def check(self) -> None:
        """Fail now, before any work, if Ray is needed but missing or its cluster unreachable."""
        if self.name == "ray":
            _import_ray()
            if self.address not in (None, "auto"):
                _check_reachable(self.address)


@dataclass(frozen=True)
class ModelSpec:
    """How an actor loads the same model as this process: `load(name, weights, device, dtype)`."""

    name: str
    weights: str
    device: str
    dtype: str

    @classmethod
    def of(cls, model: LanguageModel) -> "ModelSpec":
        dtype = str(model.dtype).removeprefix("torch.")
        return cls(model.name, model.weights, str(model.device), dtype)


def check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ContextlensError(f"batch size (--batch-size) must be 1 or more (got {batch_size})")


def unit_vectors(model: LanguageModel, texts: list[str], batch_size: int) -> np.ndarray:
    """`[n, d]` float32 unit embeddings of `texts` on the CPU."""
    v = torch.nn.functional.normalize(model.embed(texts, batch_size), dim=-1)
    return v.float().cpu().numpy()


def embedded(
    texts: list[str], model: LanguageModel, engine: Engine, batch_size: int = 32, part: int = 64
) -> Iterator[np.ndarray]:
    """Unit vectors of `texts` in order, in parts `[rows, d]` (`part` rows each when local)."""
    check_batch_size(batch_size)
    if not texts:
        return
    if engine.name == "local":
        for start in range(0, len(texts), part):
            yield unit_vectors(model, texts[start : start + part], batch_size)
    else:
        yield from _on_ray(texts, ModelSpec.of(model), engine, batch_size)


class Embedder:
    """A Ray actor: loads the model once, then embeds the batches it is given."""

    def __init__(self, spec: ModelSpec, batch_size: int):
        from ..loader import load

        self.model = load(spec.name, weights=spec.weights, device=spec.device, dtype=spec.dtype)
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = [str(t) for t in batch["text"]]
        return {"vector": unit_vectors(self.model, texts, self.batch_size)}


def _on_ray(texts: list[str], spec: ModelSpec, engine: Engine, batch_size: int):
    ray = _import_ray()
    started = _connect(ray, engine.address)
    try:
        import pyarrow as pa
        import ray.data

        logging.getLogger("ray.data").setLevel(logging.ERROR)
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = False
        blocks = [  # a block a batch, so that every actor gets work
            pa.table({"text": texts[i : i + batch_size]}) for i in range(0, len(texts), batch_size)
        ]
        gpu = spec.device.startswith("cuda")
        ds = ray.data.from_arrow(blocks).map_batches(
            Embedder,
            fn_constructor_kwargs={"spec": spec, "batch_size": batch_size},
            batch_size=batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=engine.actors),
            num_cpus=0 if gpu else 1,
            num_gpus=1 if gpu else 0,
        )
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                yield np.asarray(batch["vector"], dtype=np.float32)
        except ray.exceptions.RayError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ContextlensError(
                f"the Ray job failed ({first}); run the same command again to resume"
            ) from None
    finally:
        if started:
            ray.shutdown()


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ContextlensError(
            "--engine ray needs Ray, which is not installed; pip install 'contextlens[ray]', "
            "or leave out --engine to embed in this process"
        ) from None
    return ray


def _connect(ray, address: str | None) -> bool:
    """Join the cluster at `address` (or start Ray here); returns whether Ray was started here
    (and so is to be stopped after the job). A Ray already initialised is used as it is."""
    if ray.is_initialized():
        return False
    if address not in (None, "auto"):
        _check_reachable(address)
    kwargs = {"address": address} if address else {"object_store_memory": OBJECT_STORE_BYTES}
    try:
        ray.init(**kwargs, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    except Exception as e:  # ray.init raises a bare Exception when its node does not start
        where = f"the Ray cluster at {address}" if address else "Ray on this machine"
        raise ContextlensError(
            f"could not start or join {where} ({str(e).splitlines()[0][:120]}); try again "
            "when the machine is less busy, or leave out --engine to embed in this process"
        ) from None
    return address is None


def _check_reachable(address: str) -> None:
    """One clear error, in seconds, for an address where no Ray cluster answers."""
    host, _, port = address.split("://")[-1].rpartition(":")
    if not host or not port.isdigit():
        raise ContextlensError(
            f"--address {address!r} is not host:port (e.g. 127.0.0.1:6379, what `ray start "
            "--head` prints)"
        )
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise ContextlensError(
            f"no Ray cluster answers at {address} ({e.strerror or e}); start one with "
            "`ray start --head` and give its address, or leave out --address to start Ray here"
        ) from None
