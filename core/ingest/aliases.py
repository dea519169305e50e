"""The header names cartsight recognises for each canonical field, best first.

The sniffer ranks a file's columns by them and the ingest names them when a column is missing; the
nested-file reader (:mod:`core.ingest.tabular`) uses them to tell an item list from other lists. They live
here, below all three, so none of those has to import another for them.
"""
from __future__ import annotations

#: Header names recognised for each canonical field, best first (compared lower-cased, with
#: spaces and hyphens read as underscores).
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    # a customer's code, id or number before a bare "Customer" or "Client", which often holds their name
    # (Lightspeed's Customer beside its Customer Code): two Ann Lees are two shoppers
    "user_id": ("user_id", "userid", "user", "customer_id", "customerid", "cust_id", "customer_code",
                "customer_number", "customer_no", "customer_user_id", "visitor_id", "visitorid", "client_id",
                "clientid", "client_code", "client_number", "client_no", "shopper_id", "member_id", "member_number",
                "member_no", "customer", "visitor", "client", "shopper",
                # analytics exports: GA4, Segment, Mixpanel, Amplitude, Universal Analytics
                "user_pseudo_id", "anonymous_id", "distinct_id", "amplitude_id", "fullvisitorid", "buyer_id",
                "account_id", "profile_id", "person_id", "contact_id",
                # order exports (Shopify, WooCommerce, Magento, BigCommerce, Stripe, Etsy): an id, else the e-mail
                "buyer_user_id", "customer_email", "billing_email", "buyer_email", "purchaser_email", "email", "uid",
                "cookie_id", "device_id"),
    "event_time": ("event_time", "timestamp", "datetime", "date_time", "time", "ts", "event_timestamp",
                   "created_at", "occurred_at", "sent_at", "received_at", "invoicedate", "invoice_date",
                   "order_date", "purchase_date", "sale_date", "transaction_date", "order_datetime", "date_created",
                   "created", "created_date", "creation_date", "placed_at", "paid_at", "date_paid", "processed_at",
                   "completed_at", "date_completed", "date"),
    "event_type": ("event_type", "eventtype", "event", "action", "behavior", "behaviour", "behavior_type",
                   "behaviour_type", "event_name", "event_action", "type"),
    "item_id": ("item_id", "itemid", "item", "product_id", "productid", "product", "sku", "stockcode",
                "stock_code", "article", "product_sku", "item_sku", "lineitem_sku", "variant_id", "asin"),
    "category": ("category_code", "category", "category_name", "category_id", "categoryid", "cat",
                 "item_category", "product_category", "product_type"),
    "brand": ("brand", "brand_name", "manufacturer", "item_brand", "product_brand", "vendor"),
    # order exports (Shopify's Lineitem price, WooCommerce's Item Cost) name the unit price before their totals
    "price": ("price", "unit_price", "unitprice", "item_price", "product_price", "sale_price", "lineitem_price",
              "item_cost", "price_each", "unit_cost",
              # a line's total (unit price x quantity), then an order's (see PRICE_KINDS)
              "line_total", "lineitem_total", "line_amount", "line_price", "extended_price", "total_price",
              "order_total", "grand_total", "order_total_amount", "total", "total_amount", "order_amount", "amount",
              "amount_paid", "total_paid", "value", "order_value", "revenue", "sales", "net_sales", "gross_sales",
              "total_sales", "gross", "sales_amount", "transaction_amount", "purchase_amount", "payment_amount",
              "spend", "total_spent", "subtotal", "order_subtotal", "subtotal_amount", "order_subtotal_amount",
              "monetary"),
    "quantity": ("quantity", "qty", "units", "count", "item_quantity", "lineitem_quantity", "quantity_ordered",
                 "qty_ordered", "order_quantity", "total_quantity", "items_sold", "units_sold", "item_count",
                 "items_count", "number_of_items", "num_items", "total_items", "items"),
    "session_id": ("session_id", "user_session", "sessionid", "session", "visit_id", "ga_session_id",
                   "session_key", "visit"),
}
