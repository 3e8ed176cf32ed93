"""What the REST API (taskqueue.api) and the dashboard (taskqueue.web) share:
bearer-token auth and who acted (``auth``), the one error shape and the
exception handler (``errors``), request bodies decoded under the nesting
guard (``body``), the refusals before any handler runs (``guards``: browser
requests from other sites, non-JSON bodies; ``query``: undeclared query
parameters) and the cap on request heads (``protocol``).

It imports neither of them; they import it and never each other. The whole
app is put together above all three, in taskqueue.app."""
