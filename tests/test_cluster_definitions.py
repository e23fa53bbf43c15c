"""The cluster definitions in cluster/ hold together: the launcher config passes Ray's own schema, the
KubeRay manifests use one image with requests equal to what Ray is told, the RayJob runs the RayCluster's
spec, the MLflow server admits the name the workers use, and `ray job submit --working-dir .` uploads code only."""

from __future__ import annotations

import copy
import re
import string
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"


def manifests(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((CLUSTER / name).read_text()) if doc]


def containers(pod_spec: dict) -> list[dict]:
    return pod_spec["template"]["spec"]["containers"]


def pinned(package: str) -> str:
    text = (REPO / "constraints" / "cpu.txt").read_text()
    return re.search(rf"^{package}==(\S+)$", text, re.M).group(1)


def test_the_launcher_config_passes_rays_schema_and_a_broken_one_does_not():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((CLUSTER / "gpu-cluster.yaml").read_text())
    validate_config(prepare_config(copy.deepcopy(config)))
    broken = copy.deepcopy(config)
    broken["available_node_types"]["gpu_worker"]["max_wrokers"] = 4
    with pytest.raises(Exception, match="max_wrokers"):
        validate_config(prepare_config(broken))
    # the nodes run the project's image, token auth on every `ray start`, nothing installed at boot
    assert config["docker"]["image"].endswith("/daif:0.1")
    assert not config["setup_commands"]
    for command in config["head_start_ray_commands"] + config["worker_start_ray_commands"]:
        assert command == "ray stop" or command.startswith("RAY_AUTH_MODE=token ray start"), command
    # with docker, file_mounts' targets are container paths (Ray stages them on the host and copies them in): the
    # token goes to the container user's home, and no run option bind-mounts a host path (Docker would make an
    # empty folder of a missing one)
    assert config["file_mounts"]["/home/ray/.ray/auth_token"] == "~/.ray/auth_token"
    assert not [option for option in config["docker"]["run_options"] if option.startswith(("-v ", "--volume", "--mount"))]


def test_the_image_matches_the_pinned_ray_and_python():
    dockerfile = (CLUSTER / "Dockerfile").read_text()
    base = re.search(r"^ARG RAY_IMAGE=rayproject/ray:(\S+)$", dockerfile, re.M).group(1)
    assert base.startswith(f"{pinned('ray')}-py311-")
    assert f'"torch=={pinned("torch")}"' in dockerfile and "-c constraints/cpu.txt ." in dockerfile


def test_kuberay_cluster_one_image_requests_equal_limits_and_ray_resources():
    cluster, policy = manifests("kuberay.yaml")
    assert (cluster["apiVersion"], cluster["kind"], policy["kind"]) == ("ray.io/v1", "RayCluster", "NetworkPolicy")
    spec = cluster["spec"]
    assert spec["rayVersion"] == pinned("ray") and spec["authOptions"] == {"mode": "token"}
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    images = {c["image"] for group in groups for c in containers(group)}
    assert images == {yaml.safe_load((CLUSTER / "gpu-cluster.yaml").read_text())["docker"]["image"]}
    for group in groups:
        (container,) = containers(group)
        assert container["resources"]["requests"] == container["resources"]["limits"], group
        gpus = container["resources"]["limits"].get("nvidia.com/gpu")
        assert group["rayStartParams"].get("num-gpus") == gpus  # Ray hands out what the pod reserved
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["shared"] == "/shared"  # stores and checkpoints on the volume every node sees
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_kuberay_autoscales_tolerates_gpu_taints_and_gives_ray_a_shared_memory_volume():
    cluster, _ = manifests("kuberay.yaml")
    spec = cluster["spec"]
    assert spec["enableInTreeAutoscaling"] is True and spec["autoscalerOptions"]["idleTimeoutSeconds"] > 0
    (gpu,) = spec["workerGroupSpecs"]
    assert gpu["minReplicas"] <= gpu["replicas"] <= gpu["maxReplicas"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu["template"]["spec"]["tolerations"]
    for group in (spec["headGroupSpec"], gpu):
        pod = group["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        (container,) = pod["containers"]
        assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
        assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
        assert volumes["shared"]["persistentVolumeClaim"]["claimName"] == "daif-shared"


def test_the_shared_claim_every_pod_mounts_is_defined_read_write_many():
    (claim,) = manifests("shared-volume.yaml")
    assert (claim["kind"], claim["metadata"]["name"]) == ("PersistentVolumeClaim", "daif-shared")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    _, deployment, _ = manifests("mlflow.yaml")
    claims = {v["persistentVolumeClaim"]["claimName"] for v in deployment["spec"]["template"]["spec"]["volumes"]
              if "persistentVolumeClaim" in v}
    assert "daif-shared" in claims


def test_the_manifests_pass_kubectls_client_dry_run():
    import shutil
    import subprocess

    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    probe = subprocess.run(["kubectl", "version", "--request-timeout=5s"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip("kubectl has no API server to reach: its client dry-run needs the server's API discovery (and "
                    "the KubeRay CRDs) to know the kinds")
    for name in ("kuberay.yaml", "mlflow.yaml", "shared-volume.yaml"):
        result = subprocess.run(["kubectl", "apply", "--dry-run=client", "-f", str(CLUSTER / name)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr


def test_the_rayjob_runs_the_rayclusters_spec_for_every_stage():
    (cluster, _), template = manifests("kuberay.yaml"), (CLUSTER / "rayjob.yaml").read_text()
    for stage in ("render", "train", "tune", "evaluate", "predict"):
        (job,) = yaml.safe_load_all(string.Template(template).substitute(STAGE=stage, ARGS="--smoke-test"))
        assert (job["apiVersion"], job["kind"], job["metadata"]["name"]) == ("ray.io/v1", "RayJob", f"daif-{stage}")
        assert job["spec"]["shutdownAfterJobFinishes"] is True
        assert job["spec"]["rayClusterSpec"] == cluster["spec"]
        script = job["spec"]["entrypoint"].split()[1]
        assert script == f"/home/ray/daif/jobs/{stage}.py" and (REPO / "jobs" / f"{stage}.py").is_file()
        env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])["env_vars"]
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        (submitter,) = job["spec"]["submitterPodTemplate"]["spec"]["containers"]  # `ray job submit` needs no GPU image
        assert submitter["image"] == f"rayproject/ray:{pinned('ray')}-py311-cpu" and "command" not in submitter


def test_the_mlflow_server_admits_the_service_name_and_serves_artifacts_from_shared_storage():
    claim, deployment, service = manifests("mlflow.yaml")
    assert (claim["kind"], deployment["kind"], service["kind"]) == ("PersistentVolumeClaim", "Deployment", "Service")
    assert service["metadata"]["name"] == "mlflow" and service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"][0]["port"] == 5000
    (server,) = deployment["spec"]["template"]["spec"]["containers"]
    args = dict(arg.removeprefix("--").split("=", 1) for arg in server["args"])
    assert {"mlflow", "mlflow:5000"} <= set(args["allowed-hosts"].split(","))
    assert args["backend-store-uri"].startswith("sqlite:////mlflow/") and args["artifacts-destination"] == "/shared/mlartifacts"
    mounts = {m["mountPath"] for m in server["volumeMounts"]}
    assert {"/mlflow", "/shared"} <= mounts
    probe_host = server["readinessProbe"]["httpGet"]["httpHeaders"][0]["value"]
    assert probe_host in args["allowed-hosts"].split(",")


def test_the_working_dir_upload_carries_code_only(tmp_path):
    """Ray's own packaging of `--working-dir .`, with the repository's .rayignore, on a tree that holds
    what a user's checkout holds after a few runs."""
    from ray._private.runtime_env.packaging import create_package

    tree = tmp_path / "checkout"
    files = {
        "daif/cli.py": "code", "jobs/train.py": "code", "cluster/rayjob.yaml": "spec", "README.md": "docs",
        ".venv/lib/python3.11/site-packages/torch/__init__.py": "env", "runs/daif-1/checkpoint_1/state.pt": "w",
        "mlflow.db": "db", "mlartifacts/1/model/state.pt": "w", "mlruns/0/meta.yaml": "m",
        "stores/nyu/shards/train-00000.h5": "data", "my-store/manifest.json": "{}", "my-store/shards/test-00000.h5": "data",
        "daif-results/eval/metrics.json": "{}", ".git/HEAD": "ref", "daif/__pycache__/cli.cpython-311.pyc": "pyc",
    }
    for name, text in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    (tree / ".rayignore").write_text((REPO / ".rayignore").read_text())
    package = tmp_path / "package.zip"
    create_package(str(tree), package, include_gitignore=False)  # .rayignore alone, without .gitignore's help
    uploaded = {name for name in zipfile.ZipFile(package).namelist() if not name.endswith("/")}
    assert uploaded == {"daif/cli.py", "jobs/train.py", "cluster/rayjob.yaml", "README.md", ".rayignore",
                        "my-store/manifest.json"}


def test_the_runtime_env_adds_every_dependency_a_stock_ray_image_lacks():
    import tomllib

    def name(requirement: str) -> str:
        return re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    runtime_env = yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text())
    image_has = {"torch", "numpy", "ray"}  # the stock image's Ray (with numpy) plus the PyTorch you add
    assert {name(r) for r in project} - image_has == {name(r) for r in runtime_env["pip"]}
