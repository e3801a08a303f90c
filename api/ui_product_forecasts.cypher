// The product's current forecasts, one per location ("ALL" when it has no stock record).
MATCH (p:Product {product_id: $product_id})-[:HAS_FORECAST]->(f:Forecast {current: true})
RETURN f.location_id AS location_id, f.model AS model, f.model_version AS model_version,
       f.granularity AS granularity, f.first_day AS first_day, f.horizon_days AS horizon_days,
       f.level AS level, f.mean AS mean, f.lower AS lower, f.upper AS upper,
       f.days_of_cover AS days_of_cover, f.stockout_probability AS stockout_probability
ORDER BY location_id
