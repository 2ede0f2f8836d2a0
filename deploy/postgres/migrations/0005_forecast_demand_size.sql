-- The mean units on a day with demand (outliers capped), which sets the item's own service
-- level. Rows written before it count as one unit.
ALTER TABLE replenishment_forecasts ADD COLUMN demand_size double precision NOT NULL DEFAULT 1;
