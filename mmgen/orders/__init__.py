"""Generation orders: one file per order, each a :class:`~mmgen.orders.base.Order`."""

from mmgen.orders.base import ORDERS, GenerationState, Order, build_order

__all__ = ["ORDERS", "GenerationState", "Order", "build_order"]
