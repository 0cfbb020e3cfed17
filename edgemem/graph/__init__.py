"""The graph format, written once: the IR (ir.py), its checks (check.py), the integer reference (ref.py), the
blob (blob.py), arena placement (arena.py) and the integer rules every op uses (intops.py). docs/graph.md."""
