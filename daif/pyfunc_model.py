"""The code of daif's MLflow model, logged as a pyfunc model "from code" (no pickle).

`mlflow.pyfunc.load_model(uri)` executes this file (copied into the model folder) and then
`load_context`, which builds the network from the model's one artifact, the checkpoint directory
(state.pt read with weights_only=True, meta.json). The daif package travels with the model (`code_paths`:
the model folder's code/daif, put first on sys.path by MLflow), so loading needs only the model's
requirements (mlflow, torch, numpy, pyyaml), not an installed daif. daif itself never runs this file:
`daif.model_io.load_model` reads the checkpoint artifact directly. Loading with mlflow.pyfunc runs the
model folder's copies of this file and of daif, so do that with trusted models only.

    model = mlflow.pyfunc.load_model("runs:/<run_id>/model")
    out = model.predict({"stack": stack, "focus_distances": focus})
    # stack (B, S, 3, H, W) float32 in [0, 1], focus (B, S) float32 metres (the signature)
    # -> {"aif" (B, 3, H, W), "depth" (B, 1, H, W) metres}
"""

from __future__ import annotations

import mlflow
import mlflow.pyfunc


class DAIFPythonModel(mlflow.pyfunc.PythonModel):
    """DAIF-Net behind MLflow's pyfunc interface."""

    def load_context(self, context) -> None:
        from daif.checkpoint import load_checkpoint_model

        self.net, self.meta = load_checkpoint_model(context.artifacts["checkpoint"])

    def predict(self, context, model_input, params=None):
        import numpy as np
        import torch

        stack = torch.as_tensor(np.asarray(model_input["stack"], dtype=np.float32))
        focus = torch.as_tensor(np.asarray(model_input["focus_distances"], dtype=np.float32))
        with torch.no_grad():
            aif, depth = self.net(stack, focus)
        return {"aif": aif.numpy(), "depth": depth.numpy()}


mlflow.models.set_model(DAIFPythonModel())
