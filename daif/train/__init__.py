"""Training on Ray Train: the per-worker loop (`loop`), the driver (`driver.train`), `daif train` (`cli`)."""
