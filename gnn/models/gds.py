"""A Neo4j Graph Data Science baseline: what a Neo4j shop would build without kgrec.

FastRP embeds the customer-product purchase graph, KNN links each product to the products with
the most similar embeddings, and a customer's score for a product sums its KNN similarity to what
they bought (the ItemKNN scoring rule, with the GDS similarity in place of co-purchase cosine).

Both algorithms run inside the database, on an in-memory graph projected from the order lines
before the training cut-off only. The derived `PURCHASED` relationships are never read: they
summarise the whole history, test period included. The projection has a unique name and is
dropped whatever happens.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

import neo4j
import numpy as np
import scipy.sparse as sp

from gnn.models.base import FitContext, Recommender
from gnn.models.baselines import interaction_matrix
from gnn.snapshot import GraphSnapshot

# Order lines strictly before the cut-off, aggregated to one weighted BOUGHT edge per customer
# and product, projected undirected so FastRP propagates both ways.
_PROJECT = """
MATCH (c:Customer)-[:PLACED]->(o:Order)-[:CONTAINS]->(p:Product)
WHERE o.ts < datetime({epochMillis: $cutoff})
WITH c, p, count(*) AS w
WITH gds.graph.project(
  $name, c, p,
  {sourceNodeLabels: ['Customer'], targetNodeLabels: ['Product'],
   relationshipType: 'BOUGHT', relationshipProperties: {w: toFloat(w)}},
  {undirectedRelationshipTypes: ['BOUGHT']}
) AS g
RETURN g.nodeCount AS nodes, g.relationshipCount AS relationships
"""

_FASTRP = """
CALL gds.fastRP.mutate($name, {
  embeddingDimension: $dimension,
  iterationWeights: $iteration_weights,
  relationshipWeightProperty: 'w',
  randomSeed: $seed,
  concurrency: 2,
  mutateProperty: 'fastrp'
})
YIELD nodePropertiesWritten
RETURN nodePropertiesWritten
"""

# KNN is deterministic only with one thread and a seed.
_KNN = """
CALL gds.knn.stream($name, {
  nodeLabels: ['Product'],
  nodeProperties: ['fastrp'],
  topK: $top_k,
  similarityCutoff: $cutoff,
  randomSeed: $seed,
  concurrency: 1
})
YIELD node1, node2, similarity
RETURN gds.util.asNode(node1).product_id AS a, gds.util.asNode(node2).product_id AS b,
       similarity
"""

_DROP = "CALL gds.graph.drop($name, false) YIELD graphName RETURN graphName"


class FastRPKNN(Recommender):
    """FastRP embeddings + GDS KNN between products, scored like item-kNN."""

    name: ClassVar[str] = "fastrp-knn"
    #: Fitting needs a live Neo4j holding the graph the snapshot was exported from.
    needs_graph: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {
        "embedding_dimension": 64,
        "iteration_weights": [0.0, 1.0, 1.0],
        "top_k": 10,
        "random_seed": 42,
        "similarity_cutoff": 0.0,
    }

    def __init__(
        self,
        *,
        driver: neo4j.Driver | None = None,
        database: str | None = None,
        **params: Any,
    ) -> None:
        super().__init__(**params)
        self.driver = driver
        self.database = database
        self.graph_stats: dict[str, int] = {}

    def fit(self, train: GraphSnapshot, context: FitContext) -> None:
        if self.driver is None or self.database is None:
            raise ValueError(f"model {self.name!r} needs a Neo4j driver and database to fit")
        self.n_customers, self.n_products = train.n_customers, train.n_products
        self.history = interaction_matrix(train)
        counts = np.asarray(self.history.sum(axis=0)).ravel()
        self.popularity = (counts / (counts.max() + 1) * 1e-6).astype(np.float32)
        if len(train.ts_ms) == 0:
            self.similarity = sp.csr_matrix((self.n_products, self.n_products), dtype=np.float32)
            return
        # The training view holds only earlier interactions: everything up to its last one.
        cutoff = int(train.ts_ms.max()) + 1
        pairs = self._similar_products(cutoff)
        index = train.maps["product"].index
        rows, cols, vals = [], [], []
        for a, b, similarity in pairs:
            i, j = index.get(a), index.get(b)
            if i is None or j is None or i == j or similarity <= 0:
                continue
            rows.append(i)
            cols.append(j)
            vals.append(similarity)
        self.similarity = sp.csr_matrix(
            (
                np.asarray(vals, np.float32),
                (np.asarray(rows, np.int64), np.asarray(cols, np.int64)),
            ),
            shape=(self.n_products, self.n_products),
            dtype=np.float32,
        )

    def _similar_products(self, cutoff: int) -> list[tuple[str, str, float]]:
        assert self.driver is not None and self.database is not None
        name = f"kgrec-fastrp-knn-{uuid.uuid4().hex}"
        seed = int(self.params["random_seed"])
        with self.driver.session(database=self.database) as session:
            try:
                projected = session.run(_PROJECT, name=name, cutoff=cutoff).single(strict=True)
                self.graph_stats = {
                    "nodes": int(projected["nodes"]),
                    "relationships": int(projected["relationships"]),
                }
                session.run(
                    _FASTRP,
                    name=name,
                    dimension=int(self.params["embedding_dimension"]),
                    iteration_weights=[float(w) for w in self.params["iteration_weights"]],
                    seed=seed,
                ).consume()
                result = session.run(
                    _KNN,
                    name=name,
                    top_k=int(self.params["top_k"]),
                    cutoff=float(self.params["similarity_cutoff"]),
                    seed=seed,
                )
                return [(r["a"], r["b"], float(r["similarity"])) for r in result]
            finally:
                session.run(_DROP, name=name).consume()

    def score(self, customers: np.ndarray) -> np.ndarray:
        scores: np.ndarray = (self.history[customers] @ self.similarity).toarray()
        scores = scores.astype(np.float32)
        scores += self.popularity  # ties (no history) fall back to popularity
        return scores

    def state(self) -> dict[str, Any]:
        return {"history": self.history, "similarity": self.similarity, "pop": self.popularity}

    def load_state(self, state: dict[str, Any]) -> None:
        self.history, self.similarity = state["history"], state["similarity"]
        self.popularity = state["pop"]
