"""Loading a saved ``.keras`` model (e.g. a run's ``model/model.keras`` artifact) as data, not code.

``load_saved_model`` names protstruct's custom classes in an explicit table (instead of relying on
whichever modules happen to be imported to register them; Keras itself only imports from its own
packages), keeps Keras' safe mode on (a serialized Python ``lambda`` — a ``Lambda`` layer's
bytecode — is refused, not run) and does not compile: prediction needs no loss, metric or
optimizer, so none is deserialized.
"""

from __future__ import annotations

import keras

from protstruct.models.decoders import ICNR, DepthToSpace
from protstruct.models.model import ToAngstrom

# Every protstruct class a saved model may contain, by the name it is registered (and saved) under
# with @keras.saving.register_keras_serializable("protstruct"). The losses and metric of
# protstruct.train.losses are only in the compile config, which load_saved_model skips.
CUSTOM_OBJECTS: dict[str, type] = {
    "protstruct>ToAngstrom": ToAngstrom,
    "protstruct>DepthToSpace": DepthToSpace,
    "protstruct>ICNR": ICNR,
}


def load_saved_model(path, where: str) -> keras.Model:
    """The model saved at ``path``, loaded with ``compile=False, safe_mode=True`` and only
    :data:`CUSTOM_OBJECTS` as custom classes. Any failure (not a ``.keras`` file, a class that is
    not Keras' or ours, a ``Lambda`` refused by safe mode, not a model) is a ValueError whose
    message starts with ``where`` and gives the reason."""
    try:
        model = keras.saving.load_model(path, custom_objects=dict(CUSTOM_OBJECTS), compile=False, safe_mode=True)
    except Exception as exc:  # any failure to load is the artifact's fault
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if len(reason) > 600:
            reason = reason[:600] + " …"
        raise ValueError(f"{where}: cannot be loaded as a protstruct model ({type(exc).__name__}: {reason})") from None
    if not isinstance(model, keras.Model):
        raise ValueError(f"{where}: holds a {type(model).__name__}, not a Keras model")
    return model
