"""What a taskqueue process tells about itself: Prometheus metrics
(``metrics``, fed by a worker's ``readings``), logs (``logs``), OpenTelemetry
spans (``tracing``), and the one naming of how an attempt ended that metrics
and spans share (``outcomes``). Nothing here imports the worker: the worker
hands these modules values and callables."""
