"""The hello-world WSGI app for Gunicorn: 200, text/plain, 12 bytes."""

BODY = b"Hello world\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
