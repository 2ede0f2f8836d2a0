"""Webhook bodies for the gateway's tests, written from the field lists Shopify and WooCommerce
document for these topics (REST resources); no real shop's data. Ids are made up."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

SHOP = "example-brand.myshopify.com"


def shopify_order(order_id: int = 450789469, cancelled: bool = False) -> dict[str, Any]:
    return {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "name": "#1001",
        "created_at": "2026-11-30T10:15:00-05:00",
        "updated_at": "2026-11-30T10:15:02-05:00",
        "cancelled_at": "2026-11-30T12:00:00-05:00" if cancelled else None,
        "cancel_reason": "customer" if cancelled else None,
        "location_id": None,  # set for POS orders only
        "financial_status": "paid",
        "line_items": [
            {
                "id": 466157049,
                "variant_id": 39072856,
                "product_id": 632910392,
                "sku": "IPOD2008GREEN",
                "quantity": 2,
                "current_quantity": 2,
                "fulfillable_quantity": 2,
                "fulfillment_status": None,
                "requires_shipping": True,
                "fulfillment_service": "manual",
                "variant_inventory_management": "shopify",
            },
            {
                "id": 518995019,
                "variant_id": 49148385,
                "product_id": 632910392,
                "sku": "IPOD2008RED",
                "quantity": 1,
                "current_quantity": 1,
                "fulfillable_quantity": 1,
                "fulfillment_status": None,
                "requires_shipping": True,
                "fulfillment_service": "manual",
                "variant_inventory_management": "shopify",
            },
            {  # a tip: no SKU, no stock
                "id": 703073504,
                "variant_id": None,
                "product_id": None,
                "sku": None,
                "quantity": 1,
                "current_quantity": 1,
                "fulfillable_quantity": 0,
                "requires_shipping": False,
            },
        ],
    }


def shopify_fulfillment(order_id: int = 450789469) -> dict[str, Any]:
    return {
        "id": 255858046,
        "order_id": order_id,
        "status": "success",
        "created_at": "2026-12-01T09:00:00-05:00",
        "location_id": 655441491,
        "tracking_company": "UPS",
        "line_items": [
            {"id": 466157049, "sku": "IPOD2008GREEN", "quantity": 2, "fulfillable_quantity": 0}
        ],
    }


def shopify_refund(order_id: int = 450789469) -> dict[str, Any]:
    return {
        "id": 509562969,
        "order_id": order_id,
        "created_at": "2026-12-03T14:00:00-05:00",
        "processed_at": "2026-12-03T14:00:00-05:00",
        "note": "wrong size",
        "restock": True,
        "refund_line_items": [
            {
                "id": 104689539,
                "line_item_id": 466157049,
                "quantity": 1,
                "restock_type": "return",
                "location_id": 655441491,
                "subtotal": 199.0,
                "line_item": {"id": 466157049, "sku": "IPOD2008GREEN", "quantity": 2},
            },
            {
                "id": 709875399,
                "line_item_id": 518995019,
                "quantity": 1,
                "restock_type": "no_restock",
                "location_id": None,
                "line_item": {"id": 518995019, "sku": "IPOD2008RED", "quantity": 1},
            },
        ],
        "transactions": [],
    }


def woo_order(order_id: int = 727, status: str = "processing") -> dict[str, Any]:
    return {
        "id": order_id,
        "parent_id": 0,
        "status": status,
        "currency": "EUR",
        "date_created_gmt": "2026-11-30T15:19:21",
        "date_modified_gmt": "2026-12-01T08:00:00",
        "date_completed_gmt": "2026-12-01T08:00:00" if status == "completed" else None,
        "line_items": [
            {
                "id": 315,
                "name": "Woo Single #1",
                "product_id": 93,
                "variation_id": 0,
                "quantity": 2,
                "sku": "WOO-SINGLE-1",
                "meta_data": [],
            },
            {
                "id": 316,
                "name": "Ship Your Idea",
                "product_id": 22,
                "variation_id": 23,
                "quantity": 1,
                "sku": "",
                "meta_data": [],
            },
        ],
        "refunds": [],
    }


def signature(body: bytes, secret: str) -> str:
    """base64 HMAC-SHA256 of the body: Shopify's and WooCommerce's scheme."""
    return base64.b64encode(hmac.digest(secret.encode(), body, hashlib.sha256)).decode()


def shopify_headers(body: bytes, topic: str, webhook_id: str, secret: str) -> dict[str, str]:
    return {
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": signature(body, secret),
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-API-Version": "2026-10",
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Triggered-At": "2026-11-30T15:15:02.000Z",
        "Content-Type": "application/json",
    }


def woo_headers(body: bytes, topic: str, secret: str, delivery: str = "d1") -> dict[str, str]:
    resource, _, event = topic.partition(".")
    return {
        "X-WC-Webhook-Source": "https://shop.example.org/",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-Signature": signature(body, secret),
        "X-WC-Webhook-ID": "12",
        "X-WC-Webhook-Delivery-ID": delivery,
        "Content-Type": "application/json",
    }
