"""safs_lite: learn, reproduce and extend SAFS (Sparse Activation Function Search).

The public API most notebooks need is re-exported here:

    >>> from safs_lite import load_data, build_model, prune_model, sparsity_report
    >>> from safs_lite import SAFSConfig, run_safs          # a built-in model by name
    >>> from safs_lite import Data, make_searchable, search  # a network and data of your own

`safs_lite.train` is the training function; the module is `safs_lite.training.loop`.
`safs_lite.search` is the one-call pipeline for your own network; stage 1's searches are in the
module `safs_lite.method.lahc` (`from safs_lite.method.lahc import lahc, MOVES`): no name here shadows a
submodule. docs/kit.md maps every package.
"""
from .data.builtin import load_data
from .data.core import Data
from .data.splits import DATASETS, DataNotFoundError, Split
from .method.activations import (
                                 ACTIVATIONS,
                                 SEARCH_SPACE,
                                 Activation,
                                 get_activations,
                                 get_alpha_beta,
                                 get_op,
                                 set_activations,
                                 set_trainable_scales,
)
from .method.lahc import SearchConfig, random_search
from .method.pruning import export, load_pruned, masks, prune_model, sparsity_report, sparsity_table
from .method.searchlog import SearchResult, read_history
from .nets.models import MODELS, build_model
from .nets.searchable import make_searchable, unsupported_activations
from .run.config import PRESETS, SAFSConfig
from .run.folders import load_safs_model
from .run.pipeline import magnitude_pruning, train_dense
from .run.safs import SAFSResult, run_safs, search
from .training.loop import TrainConfig, evaluate, predict, seed_everything, train
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
