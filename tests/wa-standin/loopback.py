"""What the loopback receivers of the tests share (hub_receiver.py,
sw_receiver.py, tests/faults/fd_sink.py). Python 3, standard library only.
Test infrastructure, never installed."""
import json
import os
from http.server import ThreadingHTTPServer


def answer_json(handler, status, obj):
    """Answer STATUS with OBJ as a JSON body (keep-alive: a length)."""
    payload = json.dumps(obj).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


def serve(listen, port_file, handler):
    """Serve HANDLER on LISTEN, on a free port written to PORT_FILE once it
    listens (atomically: a reader never sees half a number), until killed."""
    srv = ThreadingHTTPServer((listen, 0), handler)
    srv.daemon_threads = True
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
