"""A local stand-in for Twilio's Messages API, for scripts/api-property-test: every POST is
accepted like Twilio accepts a message (201, queued). Usage: python3 twilio_stand_in.py PORT"""

import http.server
import json
import sys
import uuid


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps(
            {"sid": "SM" + uuid.uuid4().hex, "status": "queued", "error_code": None}
        ).encode()
        self.send_response(201)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
