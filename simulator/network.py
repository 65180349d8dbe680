"""Traffic between GPUs that no table measures, MODELLED from the GPU spec's figures (simulator/gpus.py):
point-to-point activations between pipeline stages, and the part of a tensor-parallel all-reduce that crosses
nodes. Every output that uses them says so (NOTE).

- A point-to-point send of B bytes a GPU takes latency + B / bandwidth: NVLink (`interconnect_bw_bytes_s`)
  within a node, the node's network (`network_bw_bytes_s`) between nodes.
- An all-reduce over t = N · G GPUs (N nodes of G) runs hierarchically: within each node as an all-reduce over G
  (timed by the time model, as any all-reduce), then a ring over the N nodes of the 1/G of the bytes each GPU
  holds: 2 (N − 1) steps of latency + 2 (N − 1)/N · B/G bytes over the network.
"""
from __future__ import annotations

import numpy as np

from simulator.gpus import GPUSpec

# Assumed latencies (modelling choices, NOT measurements; no microbenchmark measures them yet):
NVLINK_LATENCY_S = 10e-6  # one message within a node (as timemodel.ALLREDUCE_LATENCY_S)
NETWORK_LATENCY_S = 20e-6  # one message between nodes (InfiniBand / RoCE, through NCCL)


def note(gpu: GPUSpec) -> str:
    """The warning every output that uses the network model carries."""
    return (f"network: NVLink within a node ({gpu.interconnect_bw_bytes_s / 1e9:.0f} GB/s a GPU) and the node's "
            f"network between nodes ({gpu.network_bw_bytes_s / 1e9:.0f} GB/s a GPU) of {gpu.name} are modelled "
            "from its spec, not measured")


def nodes(gpu: GPUSpec, n_gpus: int) -> int:
    """Nodes that n_gpus GPUs occupy, filled one after another."""
    return -(-int(n_gpus) // gpu.gpus_per_node)


def p2p_s(gpu: GPUSpec, nbytes, across_nodes: bool) -> np.ndarray:
    """Seconds of one point-to-point send of `nbytes` a GPU (arrays broadcast)."""
    if across_nodes:
        return NETWORK_LATENCY_S + np.asarray(nbytes, dtype=float) / gpu.network_bw_bytes_s
    return NVLINK_LATENCY_S + np.asarray(nbytes, dtype=float) / gpu.interconnect_bw_bytes_s


def stage_boundaries(gpu: GPUSpec, t: int, pp: int) -> tuple[int, int]:
    """(within a node, across nodes): the pp − 1 boundaries between consecutive stages of t GPUs each, stage k on
    GPUs k·t .. (k + 1)·t − 1 filled node by node."""
    g = gpu.gpus_per_node
    across = sum(1 for k in range(1, pp) if (k * t) // g != (k * t - 1) // g)
    return pp - 1 - across, across


def across_nodes_allreduce_s(gpu: GPUSpec, nbytes, t: int) -> np.ndarray:
    """Seconds of the ring over nodes of an all-reduce of `nbytes` over t GPUs (module docstring); 0 within a node."""
    n = nodes(gpu, t)
    if n <= 1:
        return np.zeros_like(np.asarray(nbytes, dtype=float))
    per_gpu = np.asarray(nbytes, dtype=float) / gpu.gpus_per_node
    return 2 * (n - 1) * NETWORK_LATENCY_S + 2.0 * (n - 1) / n * per_gpu / gpu.network_bw_bytes_s
