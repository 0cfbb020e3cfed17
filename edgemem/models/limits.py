"""The graph format's size limits (edgemem.graph.ir, docs/graph.md), as the model configs check them: a model that
breaks one trains but can never be exported, so its config refuses it up front."""

MAX_DIM = 1024  # graph ops: every dimension in [1, EM_MAX_DIM]
MAX_LMU_CELLS = 4096  # the LMU op: n_u * order
MAX_KERNEL = 16  # the CONV1D op
