"""The training workers' torch.distributed rendezvous, bound to loopback when the workers' node is.

Ray Train's TorchConfig sets MASTER_ADDR to rank 0's node address and lets `init_process_group("env://")`
start torch's rendezvous store (TCPStore) in rank 0. torch 2.13 binds that store to every interface
whatever MASTER_ADDR says, so on a local Ray bound to 127.0.0.1 (daif.runtime) a training run still
listened on all interfaces. `TorchConfig()` here does the same rendezvous, except that when rank 0's
node address is a loopback address (every worker is on this machine) rank 0 first serves the store
itself on a socket bound to that address (`TCPStore(master_listen_fd=...)`), and every rank, rank 0
included, joins it as a client (torch's TORCHELASTIC_USE_AGENT_STORE). On any other address (a
cluster) it is Ray Train's own rendezvous, unchanged.

Ray's internal API (Ray 2.60): ray.train.torch.config `_TorchBackend`, `_setup_torch_process_group`,
`_set_torch_distributed_env_vars`; ray.train._internal.utils `get_address_and_port`.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any

_STORE: list[Any] = []  # rank 0's store server, alive as long as the worker process


def _serve_store(address: str, world_size: int, timeout_s: float) -> int:
    """On rank 0: serve a TCPStore on `address` (not on every interface); returns its port."""
    from datetime import timedelta

    import torch.distributed as dist

    listener = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, 0))
    listener.listen(128)
    store = dist.TCPStore(address, listener.getsockname()[1], world_size, True, timedelta(seconds=timeout_s),
                          wait_for_workers=False, master_listen_fd=listener.fileno())
    _STORE[:] = [store, listener]
    return listener.getsockname()[1]


def _join_store(address: str, port: int) -> None:
    os.environ.update(MASTER_ADDR=address, MASTER_PORT=str(port), TORCHELASTIC_USE_AGENT_STORE="True")


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def TorchConfig(**kwargs):  # noqa: N802 - stands in for ray.train.torch.TorchConfig
    """A ray.train.torch.TorchConfig whose rendezvous store binds a loopback node address (module docstring)."""
    import ray
    from ray.train.torch import TorchConfig as RayTorchConfig
    from ray.train.torch.config import _set_torch_distributed_env_vars, _setup_torch_process_group, _TorchBackend
    from ray.train._internal.utils import get_address_and_port

    class LoopbackBackend(_TorchBackend):
        def on_start(self, worker_group, backend_config) -> None:
            address, _ = worker_group.execute_single(0, get_address_and_port)
            if not is_loopback(address):
                return super().on_start(worker_group, backend_config)
            backend = backend_config.backend
            if backend is None:
                backend = "nccl" if worker_group.get_resources_per_worker().get("GPU", 0) > 0 else "gloo"
            size = len(worker_group)
            port = worker_group.execute_single(0, _serve_store, address, size, backend_config.timeout_s)
            worker_group.execute(_join_store, address, port)
            worker_group.execute(_set_torch_distributed_env_vars)
            ray.get([worker_group.execute_single_async(rank, _setup_torch_process_group, backend=backend, world_rank=rank,
                                                       world_size=size, init_method="env://", timeout_s=backend_config.timeout_s)
                     for rank in range(size)])

    class LoopbackTorchConfig(RayTorchConfig):
        @property
        def backend_cls(self):
            return LoopbackBackend

    return LoopbackTorchConfig(**kwargs)
