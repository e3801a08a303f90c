// Re-checks that one explanation path exists in the graph. <<pattern>> is built by
// recommender/explain.py from allow-listed labels, key properties and relationship types only;
// every id and relation value is a parameter.
MATCH <<pattern>>
WHERE <<conditions>>
RETURN count(*) > 0 AS found
