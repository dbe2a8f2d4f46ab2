"""Transport floors: what a four-process chain that only decodes and forwards a ticket costs.

``run.measure_floors`` measures, on one nats-server, the same chain twice: with FastStream
handlers on Opora's consumer settings (``floor_tickets_per_s``) and in bare nats-py
(``raw_floor_per_s``). Kept free of imports: the hop processes import only what they need.
"""
