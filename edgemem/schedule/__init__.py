"""Memory schedules of an integer graph: arena placement by buffer lifetime (arena.py) and whole-model schedules
(streaming, layer by layer, patch-based) with their peak RAM (plan.py)."""
