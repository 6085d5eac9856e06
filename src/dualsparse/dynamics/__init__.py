"""Learning dynamics: per-example statistics, dense-vs-sparse comparisons, data subsets, continual learning.

* :class:`ExampleTracker` — a training callback recording, for every training row, forgetting
  events, first-learned epoch, confidence/variability (data maps), EL2N and GraNd; per-epoch
  forgetting aligned with topology updates.
* :func:`compare`, :func:`noise_floor`, :func:`compression_identified` — do dense and sparse
  networks find the same examples hard?
* :func:`select_subset`, :func:`train_on_subset` — data pruning by those statistics, and the joint
  saving of data pruning plus weight sparsity.
* :func:`make_task_sequence`, :func:`run_continual` — class-, task- and domain-incremental
  sequences, naive fine-tuning or replay buffers filled by any subset strategy.

Results are plain DataFrames and dicts, ready for a results store.
"""

from .compare import compare, compression_identified, hardness, modal_prediction, noise_floor
from .continual import SCENARIOS, ContinualResult, Task, make_task_sequence, run_continual
from .grand import grand_scores, per_example_grad_norms
from .stats import TransitionCounter, sequence_statistics
from .subsets import STRATEGIES, select_subset, train_on_subset
from .tracker import ExampleTracker, topology_forgetting

__all__ = [
    "SCENARIOS", "STRATEGIES", "ContinualResult", "ExampleTracker", "Task", "TransitionCounter", "compare",
    "compression_identified", "grand_scores", "hardness", "make_task_sequence", "modal_prediction", "noise_floor",
    "per_example_grad_norms", "run_continual", "select_subset", "sequence_statistics", "topology_forgetting",
    "train_on_subset",
]
