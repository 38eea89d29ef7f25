"""The edge's RQ jobs: top-level functions taking ids, each opening its own app context
(``context.py``), safe to run twice. ``edge_server.work_queue`` queues them."""
