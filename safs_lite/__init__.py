"""safs_lite: learn, reproduce and extend SAFS (Sparse Activation Function Search).

The public API most notebooks need is re-exported here:

    >>> from safs_lite import load_data, build_model, prune_model, sparsity_report
"""
from .activations import (ACTIVATIONS, SEARCH_SPACE, Activation, get_activations, get_alpha_beta,
                          get_op, set_activations, set_trainable_scales)
from .data import DATASETS, Data, DataNotFoundError, Split, load_data
from .models import MODELS, build_model
from .pruning import export, load_pruned, masks, prune_model, sparsity_report
from .search import SearchConfig, SearchResult, lahc, random_search, read_history
from .pipeline import magnitude_pruning, train_dense
from .train import TrainConfig, evaluate, predict, seed_everything, train

from .version import KIT_VERSION as __version__  # noqa: E402

__all__ = [
    "ACTIVATIONS", "SEARCH_SPACE", "Activation", "get_activations", "get_alpha_beta", "get_op",
    "set_activations", "set_trainable_scales",
    "DATASETS", "Data", "DataNotFoundError", "Split", "load_data",
    "MODELS", "build_model",
    "export", "load_pruned", "masks", "prune_model", "sparsity_report",
    "SearchConfig", "SearchResult", "lahc", "random_search", "read_history",
    "magnitude_pruning", "train_dense",
    "TrainConfig", "evaluate", "predict", "seed_everything", "train",
]
