"""Closed-loop simulation of replenishment policies on an order history."""
