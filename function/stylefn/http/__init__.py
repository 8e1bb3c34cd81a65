"""The API over HTTP: routes, request parsing and options, the one mapping of errors, responses
and their headers, and the gunicorn worker that reads each request whole before a thread."""
