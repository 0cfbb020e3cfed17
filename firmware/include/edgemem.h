/* edgemem C runtime: the one header a firmware includes.
 *
 * A model is a graph blob (docs/graph.md): a list of integer ops over buffers, run once per time step. C99,
 * freestanding: no malloc, no globals that hold state; all state lives in a caller-provided arena.
 *   em_status.h  em_status_t (every function returns one; each failure has its own code), em_status_str
 *   em_graph.h   the blob's constants and dtypes; em_graph_bind (a compiled-in model.c) or em_graph_parse (a
 *                blob loaded at run time), em_graph_init / em_graph_reset / em_graph_step, the patch schedule
 * The kernels behind the ops have their own header (em_kernels.h), for firmware that calls one directly.
 *
 * Integer rules (the same as edgemem's Python integer reference, bit for bit; docs/graph.md, docs/architecture.md):
 *   requant(acc, M, s)  = sat32((sat32(acc) * M + 2^(s-1)) >> s)   64-bit product, M in [2^30, 2^31), s in [1, 62]
 *   rshift_round(x, s)  = (x + 2^(s-1)) >> s   (x for s = 0)        arithmetic shift: ties round up
 *   satN(x)             = clamp(x, -2^(N-1), 2^(N-1) - 1)
 * A sum of requantized contributions (FC, CONV1D, ADD, ONOFF into one buffer) is int16: each contribution is
 * sat16(r), and adding one into the sum saturates the sum to int16, out = sat16(out + sat16(r)).
 */
#ifndef EDGEMEM_H
#define EDGEMEM_H

#include "em_status.h"
#include "em_graph.h"

#endif /* EDGEMEM_H */
