"""`daif tune`: the loss-scale search (the paper's Table 4 and beyond) on Ray Tune, tracked in MLflow.

- `space`: search spaces over config keys, checked before anything starts (no Ray).
- `trial`: one trial, a whole run of the training driver: its config, statuses, collapse test (no Ray import).
- `trainables`: the Ray Tune trainables (in the trial's process, or a TorchTrainer per trial).
- `runner`: the Tuner, the MLflow parent run and the trial statuses.
- `report`: table.csv, table.md, heatmap.png, best.yaml.
- `cli`: the command.
"""
