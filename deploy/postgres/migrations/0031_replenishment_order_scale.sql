-- The scale of the lines policy's order quantities, set by each planning pass with its price:
-- an item's order-up-to level lies scale × √(units a day) above its reorder point. Items first
-- seen between passes are planned at the last pass's scale; NULL (before any pass): the review
-- period's demand.
ALTER TABLE replenishment_planner ADD COLUMN order_scale double precision;
