"""Evaluation: trained models and two analytic methods on a store's test split (method.md, "Metrics").

    result = evaluate(["runs:/<run_id>/model"], data="stores/nyu", split="test", out="eval")
    result["delta1"], result["methods"]["baseline"]["image"]["delta1"], result["markdown"]

The evaluation stack is the store's middle-of-bin stack (K = the store's num_bins), the one
validation uses. Every method sees the same stacks: each model, then the analytic baseline
(`daif.baseline.depth_from_focus`, a focus measure's peak) and the defocus search
(`daif.search.defocus_search` over the first model's depth range, with the intensity weight its cost volume is
read with: a "search" head's own, else the default). Metrics come from
`daif.metrics.depth_metrics` per image; the two aggregations are derived from them exactly: "image" is
the mean over images (the reference), "pixel" pools all valid pixels (each per-image mean weighted by its
valid count, rmse-type metrics through their squares). Every method also gets image metrics: the AIF's
(`daif.metrics`: PSNR and SSIM against the true AIF, MG and SF), recon, the stack's reconstruction error
through the method's AIF and depth, and detail, its contrast-normalised high-pass error
(`daif.losses.reconstruction_errors`, no renderer window); recon and detail use no ground
truth, so on captured stacks they still rank models by how well they explain the camera's images.
`max_depths` adds masked variants (gt < d), e.g. "image_max0.5m" (DefocusNet's 0.5 m).
Captured stacks (`daif.data.captured`) may lack ground truth: a scene without depth (valid all False)
has no depth metrics and one without AIF (`Store.scenes_without_aif`) no AIF PSNR/SSIM; both are
left out of the means and named in the notes. Their focus sets cannot be re-rendered.

Generalisation (the paper's Figure 6): delta1 against the test stack size, K images taken as the
middles of K bins of the store's stack (sizes above its F images are skipped with a note), and
against other focus-distance sets, re-rendered from the store's AIF and depth with its camera.

Inference runs in this process for small splits and as Ray Data `map_batches` over an actor pool
(each actor loads the models once) for large ones. Outputs, each written atomically, in `out`:
metrics.json, metrics.csv, metrics.md, per_image.csv, generalisation.csv, generalisation.png
(and generalisation_focus.png with focus sets); all are logged to MLflow.

The modules, in the order an evaluation uses them:
    plan     the methods, the conditions (stack sizes, focus sets), the masks, the backend
    scenes   SceneEvaluator (per-image metrics of a batch, a Ray Data UDF) and running it over a split
    rows     the records: ImageRow (per image), Aggregate, GeneralisationRow, and the aggregation
    report   the files: metrics.json/.csv/.md, per_image.csv, generalisation.csv/.png
    track    MLflow: the reachability check and the logging
    core     `evaluate`, which calls them in turn; cli: `daif evaluate`
"""

from daif.evaluate.cli import add_arguments, run
from daif.evaluate.core import evaluate

__all__ = ["add_arguments", "evaluate", "run"]
