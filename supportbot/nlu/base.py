"""What our Rasa graph components share: nothing to train, or a trained state of arrays."""
from __future__ import annotations

import json
import logging
from typing import Any, Dict, Optional

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage

logger = logging.getLogger(__name__)


class StatelessComponent(GraphComponent):
    """A component with nothing to train, persist or configure."""

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> GraphComponent:
        return cls()


class StoredArraysComponent(GraphComponent):
    """A component whose trained state is JSON metadata and numpy arrays in its model storage.
    Subclasses name the file (`ARRAYS_FILE`), say what an untrained one does (`UNTRAINED`) and
    call `persist()` at the end of training."""

    ARRAYS_FILE = "arrays.npz"
    META_FILE = "meta.json"
    UNTRAINED = "it will predict nothing"

    @classmethod
    def validate_config(cls, config: Dict[str, Any]) -> None:
        """Raise InvalidConfigException for a wrong setting (subclasses check theirs)."""

    def __init__(self, config: Dict[str, Any], model_storage: ModelStorage, resource: Resource,
                 meta: Optional[Dict[str, Any]] = None, arrays: Optional[Dict[str, np.ndarray]] = None) -> None:
        self.validate_config(config)
        self._config = config
        self._model_storage = model_storage
        self._resource = resource
        self._meta = meta
        self._arrays = arrays or {}

    @classmethod
    def create(cls, config: Dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> GraphComponent:
        return cls(config, model_storage, resource)

    def persist(self) -> None:
        with self._model_storage.write_to(self._resource) as directory:
            np.savez(directory / self.ARRAYS_FILE, **self._arrays)
            (directory / self.META_FILE).write_text(json.dumps(self._meta), encoding="utf-8")

    @classmethod
    def load(cls, config: Dict[str, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> GraphComponent:
        try:
            with model_storage.read_from(resource) as directory:
                meta = json.loads((directory / cls.META_FILE).read_text(encoding="utf-8"))
                with np.load(directory / cls.ARRAYS_FILE, allow_pickle=False) as stored:
                    arrays = {key: stored[key] for key in stored.files}
        except (ValueError, FileNotFoundError):
            logger.warning("%s has no trained model; %s.", cls.__name__, cls.UNTRAINED)
            return cls(config, model_storage, resource)
        return cls(config, model_storage, resource, meta, arrays)
