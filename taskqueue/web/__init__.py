"""The dashboard: server-rendered pages at / (templates and static files
shipped in the package), kept live by the API's event stream."""
