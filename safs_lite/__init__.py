"""safs_lite: learn, reproduce and extend SAFS (Sparse Activation Function Search).

The public API most notebooks need is re-exported here:

    >>> from safs_lite import load_data, build_model, prune_model, sparsity_report
    >>> from safs_lite import SAFSConfig, run_safs          # a built-in model by name
    >>> from safs_lite import Data, make_searchable, search  # a network and data of your own

`safs_lite.train` is the training function; the module is `safs_lite.training`.
`safs_lite.search` is the one-call pipeline for your own network; stage 1's searches are in the
module `safs_lite.lahc` (`from safs_lite.lahc import lahc, MOVES`): no name here shadows a
submodule. The README's "The kit" section maps every module.
"""
from .activations import (ACTIVATIONS, SEARCH_SPACE, Activation, get_activations, get_alpha_beta,
                          get_op, set_activations, set_trainable_scales)
from .config import PRESETS, SAFSConfig
from .data import DATASETS, Data, DataNotFoundError, Split, load_data
from .lahc import SearchConfig, random_search
from .models import MODELS, build_model
from .pipeline import magnitude_pruning, train_dense
from .pruning import export, load_pruned, masks, prune_model, sparsity_report, sparsity_table
from .runs import load_safs_model
from .safs import SAFSResult, run_safs, search
from .searchable import make_searchable, unsupported_activations
from .searchlog import SearchResult, read_history
from .training import TrainConfig, evaluate, predict, seed_everything, train
from .version import KIT_VERSION as __version__

__all__ = [
    "ACTIVATIONS", "SEARCH_SPACE", "Activation", "get_activations", "get_alpha_beta", "get_op",
    "set_activations", "set_trainable_scales",
    "PRESETS", "SAFSConfig",
    "DATASETS", "Data", "DataNotFoundError", "Split", "load_data",
    "SearchConfig", "random_search",
    "MODELS", "build_model",
    "magnitude_pruning", "train_dense",
    "export", "load_pruned", "masks", "prune_model", "sparsity_report", "sparsity_table",
    "load_safs_model",
    "SAFSResult", "run_safs", "search",
    "make_searchable", "unsupported_activations",
    "SearchResult", "read_history",
    "TrainConfig", "evaluate", "predict", "seed_everything", "train",
    "__version__",
]
