"""The local Ray that the commands start listens on 127.0.0.1 only (GCS, raylet, workers, agents, dashboard, and
the training workers' torch.distributed rendezvous)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

LISTENERS = r"""
import ipaddress, json, os, socket
from pathlib import Path
from daif.runtime import ensure_ray

ensure_ray(num_cpus=1, object_store_memory=100 * 1024 * 1024)
import ray
import ray.train

@ray.remote
def ping():
    return 1

ray.get(ping.remote())  # a worker process up and listening too
node = ray._private.worker._global_node
session = os.path.basename(node.get_session_dir_path())

def read(path):
    try:
        return Path(path).read_bytes()
    except OSError:
        return b""

def listening():
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = read(stat).rsplit(b")", 1)[-1].split()
        if fields:
            parents[int(stat.parent.name)] = int(fields[1])
    pids = {os.getpid()} | {pid for pid in parents if session.encode() in read(f"/proc/{pid}/cmdline")}
    while True:  # and every descendant (worker processes rename themselves ray::...)
        more = {pid for pid, parent in parents.items() if parent in pids} - pids
        if not more:
            break
        pids |= more
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    listening = set()
    for table, family in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 6)):
        for line in read(table).decode().splitlines()[1:]:
            parts = line.split()
            if parts[3] != "0A" or parts[9] not in inodes:  # 0A: LISTEN
                continue
            address, port = parts[1].split(":")
            raw = bytes.fromhex(address)
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # /proc stores 32-bit words little-endian
            ip = ipaddress.ip_address(raw)
            ip = getattr(ip, "ipv4_mapped", None) or ip  # ::ffff:127.0.0.1 is 127.0.0.1
            listening.add(f"{ip}:{int(port, 16)}")
    return listening


def train_loop(config):  # two DDP workers (gloo): every listener of the session while both are in the process group
    import torch.distributed as dist
    import ray.train

    dist.barrier()
    if ray.train.get_context().get_world_rank() == 0:
        Path(config["out"]).write_text(json.dumps(sorted(listening())))
    dist.barrier()

from ray.train import ScalingConfig
from ray.train.torch import TorchTrainer
from daif.train.rendezvous import TorchConfig

out = Path("training.json").resolve()
TorchTrainer(train_loop, train_loop_config={"out": str(out)}, torch_config=TorchConfig(),
             scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
             run_config=ray.train.RunConfig(storage_path=str(Path("runs").resolve()))).fit()
print(json.dumps({"node_ip": node.node_ip_address, "listening": sorted(listening()), "training": json.loads(out.read_text())}))
ray.shutdown()
"""


@pytest.mark.ray
@pytest.mark.process
@pytest.mark.timeout(300)
def test_a_local_ray_started_by_daif_listens_on_loopback_only(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_ADDRESS")}
    result = subprocess.run([sys.executable, "-c", LISTENERS], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["node_ip"] == "127.0.0.1"
    assert len(found["listening"]) >= 4, found  # GCS, raylet, object manager, dashboard, workers...
    assert all(address.rsplit(":", 1)[0] == "127.0.0.1" for address in found["listening"]), found
    # the training workers add torch's rendezvous store and gloo's sockets: on loopback too
    assert set(found["training"]) - set(found["listening"]), found
    assert all(address.rsplit(":", 1)[0] == "127.0.0.1" for address in found["training"]), found


@pytest.mark.ray
def test_local_defaults_are_refused_only_on_a_cluster(ray_local, monkeypatch):
    from daif.errors import UsageError
    from daif.runtime import check_shared_defaults, on_cluster

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert on_cluster() == ""  # the session's one-node local Ray
    check_shared_defaults("", "", "train")  # the defaults are right on one machine
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    check_shared_defaults("", "", "train")  # a loopback head is this machine
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")  # a job submitted to a cluster's head sees this
    with pytest.raises(UsageError, match=r"^--storage and --tracking-uri: required on a Ray cluster \(RAY_ADDRESS=10.0.0.5:6379"):
        check_shared_defaults("", "", "train")
    with pytest.raises(UsageError, match=r"^--storage: required on a Ray cluster .* to daif tune$"):
        check_shared_defaults("", "http://mlflow:5000", "tune")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")  # the cluster's pods set it (cluster/kuberay.yaml)
    check_shared_defaults("/shared/runs", "", "train")
