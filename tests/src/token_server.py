"""A registry token server for the tests (distribution's token auth): anyone gets pull tokens,
the one user (argv[4] = USER:PASSWORD) push tokens too; a wrong password gets 401.
Usage: token_server.py PORT KEY.pem CERT.pem USER:PASSWORD"""
import base64
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

PORT, KEY, CERT, USERPASS = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
key = open(KEY).read()
cert = x509.load_pem_x509_certificate(open(CERT, "rb").read())
x5c = [base64.b64encode(cert.public_bytes(Encoding.DER)).decode()]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        query = parse_qs(urlparse(self.path).query)
        user = None
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            given = base64.b64decode(header[6:]).decode()
            if given != USERPASS:
                return self.answer(401, {"details": "incorrect username or password"})
            user = given.split(":", 1)[0]
        access = []
        for scope in query.get("scope", []):
            kind, rest = scope.split(":", 1)
            name, actions = rest.rsplit(":", 1)
            allowed = [a for a in actions.split(",") if a == "pull" or user]
            access.append({"type": kind, "name": name, "actions": allowed})
        now = int(time.time())
        claims = {
            "iss": "minibox-test", "sub": user or "", "aud": query.get("service", [""])[0],
            "exp": now + 600, "nbf": now - 10, "iat": now, "jti": str(time.time_ns()),
            "access": access,
        }
        token = jwt.encode(claims, key, algorithm="RS256", headers={"x5c": x5c})
        self.answer(200, {"token": token, "access_token": token, "expires_in": 600})

    def answer(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
