"""Public data sets mapped onto our intents: training data for the rare registers our own data
lacks, and an external validation slice that no training file ever contains (docs/data-sources.md).

- `mapping`: the reviewed mapping file `sources/public_datasets.yml` (source intent → our intent,
  `out_of_scope` or `skip`);
- `split`: every mapped row, each on the validation or the training side of a deterministic split
  (`validation_slice`, `training_pool`, `is_validation`), reusable by anything that needs data
  disjoint from training;
- `importer`: Rasa NLU YAML from the training pool (`python -m supportbot.public_data import`);
- `report`: the model scored on the validation slice (`python -m supportbot.public_data report`).
"""
from supportbot.public_data.mapping import OUT_OF_SCOPE, SKIP, Mapping, load_mapping
from supportbot.public_data.split import (
                                          PublicRow,
                                          is_validation,
                                          normalise,
                                          public_rows,
                                          training_pool,
                                          validation_slice,
)

__all__ = ["OUT_OF_SCOPE", "SKIP", "Mapping", "PublicRow", "is_validation", "load_mapping", "normalise",
           "public_rows", "training_pool", "validation_slice"]
