-- The mean units on a day with demand (outliers capped): how large an item's order lines are,
-- which sets its own service level. Rows written before it count as lines of one unit.
ALTER TABLE replenishment_forecasts ADD COLUMN demand_size double precision NOT NULL DEFAULT 1;
