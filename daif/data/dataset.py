"""A store split as a Ray Dataset, one row per scene, for `ray.train.get_dataset_shard`.

Columns: scene_id (str), aif (H, W, 3) uint8, depth (H, W) float32 metres, valid (H, W) bool,
stack (F, H, W, 3) uint8, has_aif bool (False: `aif` is all zeros, no ground truth). One read task per
shard; each yields blocks of a few scenes, so a dense 100-image shard never sits in memory whole.

Validation: the store holds a "val" split carved at render time from the training scenes
(`train_val_split`, default 10%, seeded); it never comes from "test". The reference code took its
validation set from the test split.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import ray
from ray.data.block import BlockAccessor, BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from daif.data.progress import configure_progress
from daif.data.sources import train_val_split
from daif.data.store import COLUMNS, Store, open_store, read_scene

__all__ = ["StoreDatasource", "read_split", "train_val_split"]

TARGET_BLOCK_BYTES = 64 << 20


class StoreDatasource(Datasource):
    """Ray Data source over the shards of one split of a store."""

    def __init__(self, path: str, split: str, columns: Sequence[str] = COLUMNS, verify: bool = True):
        super().__init__()
        self.store = open_store(path, verify=verify)
        self.split, self.columns = split, tuple(columns)
        self.shard_names = self.store.shard_names(split)
        height, width = self.store.image_size
        per_scene = {"aif": 3, "depth": 4, "valid": 1, "stack": 3 * len(self.store.focus_distances), "scene_id": 0, "has_aif": 0}
        self.scene_bytes = sum(per_scene[c] for c in self.columns) * height * width + 64

    def estimate_inmemory_data_size(self) -> int:
        return self.scene_bytes * self.store.num_scenes(self.split)

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None) -> list[ReadTask]:
        tasks = []
        for name in self.shard_names:
            num_rows = self.store.manifest["shards"][name]["scenes"]
            metadata = BlockMetadata(
                num_rows=num_rows, size_bytes=num_rows * self.scene_bytes, input_files=(name,), exec_stats=None
            )
            tasks.append(ReadTask(self._reader(name), metadata))
        return tasks

    def _reader(self, name: str):
        store, columns = self.store, self.columns
        scenes_per_block = max(1, TARGET_BLOCK_BYTES // self.scene_bytes)

        def read():
            with store.open_shard(name) as file:
                count = file["scene_id"].shape[0]
                for start in range(0, count, scenes_per_block):
                    scenes = [read_scene(file, i, columns) for i in range(start, min(count, start + scenes_per_block))]
                    yield BlockAccessor.batch_to_block({c: _stack_column(scenes, c) for c in columns})

        return read


def _stack_column(scenes: list[dict[str, Any]], column: str) -> np.ndarray:
    if column == "scene_id":
        return np.array([s["scene_id"] for s in scenes], dtype=object)
    return np.stack([s[column] for s in scenes])


def read_split(path: str, split: str, columns: Sequence[str] = COLUMNS, verify: bool = True) -> ray.data.Dataset:
    """One row per scene of `split` (columns as in the module docstring, or the chosen subset)."""
    unknown = set(columns) - set(COLUMNS)
    if unknown:
        raise ValueError(f"columns: unknown {sorted(unknown)}, expected some of {list(COLUMNS)}")
    configure_progress()  # the Dataset copies the DataContext now
    return ray.data.read_datasource(StoreDatasource(path, split, columns, verify))
