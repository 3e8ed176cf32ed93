"""The REST API's routes over ``TaskQueue`` (``routes.ROUTE_HANDLERS``); the
app that serves them with the dashboard is taskqueue.app.create_app."""
