"""Connected components of the identity graph, vectorized (SciPy's sparse graph routines)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def components(nodes: pd.Series, identifier_edges: pd.DataFrame, node_edges: pd.DataFrame) -> pd.Series:
    """Component label per node (aligned to `nodes`), joining nodes that share an identifier
    (`kind`, `value`) or are tied directly (`node_a`, `node_b`). Labels are the smallest node
    id of the component, so they do not depend on input order."""
    # SciPy takes a second to import: only the runs that cluster pay for it, not every load of the code.
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    node_index = pd.Index(nodes.unique())
    n = len(node_index)
    ident = (identifier_edges["kind"].astype("str") + ":" + identifier_edges["value"].astype("str"))
    ident_codes, _ = pd.factorize(ident)
    m = int(ident_codes.max()) + 1 if len(ident_codes) else 0
    rows = [node_index.get_indexer(identifier_edges["node_id"])]
    cols = [n + ident_codes]
    if len(node_edges):
        a = node_index.get_indexer(node_edges["node_a"])
        b = node_index.get_indexer(node_edges["node_b"])
        keep = (a >= 0) & (b >= 0)
        rows.append(a[keep])
        cols.append(b[keep])
    row, col = np.concatenate(rows), np.concatenate(cols)
    valid = row >= 0
    graph = coo_matrix((np.ones(valid.sum(), dtype=np.int8), (row[valid], col[valid])), shape=(n + m, n + m))
    _, labels = connected_components(graph, directed=False)
    node_labels = pd.Series(labels[:n], index=node_index)
    # Name each component by its smallest node id: stable and order-independent.
    names = pd.Series(node_index, index=node_index).groupby(node_labels.values).transform("min")
    return pd.Series(names.reindex(nodes.values).values, index=nodes.index, name="component")
