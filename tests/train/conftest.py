"""Fixtures of the training tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def tiny_store(ray_local, tmp_path_factory):
    from daif.data.pipeline import render_store

    out = tmp_path_factory.mktemp("store")
    render_store(out=str(out), source="synthetic", preset="nyuv2-5", size=(32, 32), scenes=14, shard_size=8, seed=3)
    return str(out)
