"""DAIF_DATA_PROGRESS: which Ray Data progress output a run gets, and that it reaches the Datasets."""

from __future__ import annotations

import io

import pytest

from daif.data.progress import configure_progress, progress_mode


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def data_context():
    """The process's DataContext, its progress settings restored afterwards."""
    import ray.data

    context = ray.data.DataContext.get_current()
    saved = (context.enable_progress_bars, context.print_on_execution_start)
    context.enable_progress_bars = context.print_on_execution_start = True
    yield context
    context.enable_progress_bars, context.print_on_execution_start = saved


def test_auto_is_full_on_a_terminal_and_concise_elsewhere(monkeypatch):
    monkeypatch.delenv("DAIF_DATA_PROGRESS", raising=False)
    assert progress_mode(stdout=_Terminal()) == "full"
    assert progress_mode(stdout=io.StringIO()) == "concise"
    monkeypatch.setenv("DAIF_DATA_PROGRESS", " Full ")
    assert progress_mode(stdout=io.StringIO()) == "full"
    monkeypatch.setenv("DAIF_DATA_PROGRESS", "quiet")
    with pytest.raises(ValueError, match=r"DAIF_DATA_PROGRESS: expected one of \['auto', 'concise', 'full'\], got 'quiet'"):
        progress_mode()


def test_concise_turns_bars_and_start_lines_off_and_full_leaves_them(data_context):
    import ray.data

    fresh = ray.data.DataContext()
    assert configure_progress("full", fresh) == "full"
    assert fresh.enable_progress_bars and fresh.print_on_execution_start  # Ray's defaults, untouched
    assert configure_progress("concise", fresh) == "concise"
    assert not fresh.enable_progress_bars and not fresh.print_on_execution_start
    assert data_context.enable_progress_bars  # only the given context changed


@pytest.mark.ray
def test_read_split_datasets_carry_the_setting(dense_store, data_context, monkeypatch):
    from daif.data.dataset import read_split

    monkeypatch.setenv("DAIF_DATA_PROGRESS", "concise")
    dataset = read_split(str(dense_store[0]), "train", columns=("scene_id",))
    assert dataset.context.enable_progress_bars is False and dataset.context.print_on_execution_start is False
    assert len(dataset.take_all()) == 4
