#!/usr/bin/env python3
"""A loopback HTTP proxy in front of an S3 server, for walstore's S3 tests.

It forwards every request to --upstream and, on the way:
  * checks each request's AWS Signature Version 4 (an implementation of its
    own, independent of walstore's) with --access-key/--secret, answering
    403 SignatureDoesNotMatch when it does not match, and checks a signed
    payload's SHA-256 (s3rver itself does not verify V4 signatures); with
    --session-token-prefix, also that a signed x-amz-security-token starting
    with it is there (temporary credentials);
  * logs one line per request to --log: "<conn> <METHOD> <path>?<query>",
    plus " <name>=<value>" for the headers in LOGGED_HEADERS it carries;
  * injects faults from --plan, a file of lines "<action> [METHOD [TEXT]]"
    consumed top down: the first line whose METHOD matches (or that has none)
    and whose TEXT occurs in the request's path and query (or that has none)
    applies to the request and is removed.  Actions:
      500       answer 500 InternalError
      slowdown  answer 503 SlowDown
      reset     drop the connection (RST) without answering
      stall:N   wait N seconds, then forward
      wait:FILE wait until FILE exists (at most 120 s), then forward: the test decides
                when the request reaches the server
      hang      never answer (the client must give up or be killed)
      cut       forward, but send only half of the response body, then RST

Python 3 standard library only.
"""
import argparse
import hashlib
import hmac
import http.client
import os
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

from loopback_util import serve_http, sigv4_signature

ARGS = None
PLAN_LOCK = threading.Lock()
LOG_LOCK = threading.Lock()
CONNECTIONS = iter(range(1, 1 << 30))
LOGGED_HEADERS = ("Range", "If-None-Match", "If-Match", "X-Amz-Storage-Class", "X-Amz-Security-Token",
                  "X-Amz-Server-Side-Encryption", "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id")


def take_fault(method, path):
    """Removes and returns the first plan action that applies to the request."""
    with PLAN_LOCK:
        try:
            with open(ARGS.plan) as f:
                lines = [line.split() for line in f if line.strip()]
        except FileNotFoundError:
            return None
        for i, words in enumerate(lines):
            if (len(words) < 2 or words[1] == method) and (len(words) < 3 or words[2] in path):
                del lines[i]
                with open(ARGS.plan + ".tmp", "w") as f:
                    f.writelines(" ".join(w) + "\n" for w in lines)
                os.replace(ARGS.plan + ".tmp", ARGS.plan)
                return words[0]
    return None


def quote(text):
    return urllib.parse.quote(text, safe="-_.~")


def expected_signature(method, raw_path, raw_query, headers, signed, payload_hash, credential):
    """SigV4 for S3: path encoded once, never normalised."""
    path = urllib.parse.quote(urllib.parse.unquote(raw_path), safe="/-_.~")
    pairs = []
    for part in raw_query.split("&") if raw_query else []:
        name, _, value = part.partition("=")
        pairs.append((quote(urllib.parse.unquote(name)), quote(urllib.parse.unquote(value))))
    query = "&".join(f"{n}={v}" for n, v in sorted(pairs))
    signature = sigv4_signature(ARGS.secret, method, path, query, headers, signed, payload_hash,
                                headers.get("x-amz-date", ""), credential[1:4])
    return signature, path != raw_path


def error_xml(code, message):
    return (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>").encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.conn_id = next(CONNECTIONS)

    def log_message(self, fmt, *args):
        pass

    def reset(self):
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def reply(self, status, body, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def check_signature(self, body):
        headers = {k.lower(): v for k, v in self.headers.items()}
        auth = headers.get("authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return "no SigV4 Authorization header"
        fields = dict(item.strip().split("=", 1) for item in auth[17:].split(","))
        credential = fields["Credential"].split("/")
        if credential[0] != ARGS.access_key:
            return None  # let the server refuse an unknown key (InvalidAccessKeyId)
        payload_hash = headers.get("x-amz-content-sha256", "")
        if payload_hash != "UNSIGNED-PAYLOAD" and payload_hash != hashlib.sha256(body).hexdigest():
            return "x-amz-content-sha256 does not match the body"
        raw_path, _, raw_query = self.path.partition("?")
        signature, re_encoded = expected_signature(
            self.command, raw_path, raw_query, headers, fields["SignedHeaders"].split(";"),
            payload_hash, credential)
        if re_encoded:
            return f"path {raw_path} is not encoded the SigV4 way"
        token = headers.get("x-amz-security-token", "")
        if ARGS.session_token_prefix and (
                not token.startswith(ARGS.session_token_prefix) or
                "x-amz-security-token" not in fields["SignedHeaders"].split(";")):
            return "no signed session token from the expected source"
        if "host" not in fields["SignedHeaders"].split(";"):
            return "host is not signed"
        if not hmac.compare_digest(signature, fields["Signature"]):
            return "signature does not match"
        return None

    def handle_any(self):
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length) if length else b""
        with LOG_LOCK, open(ARGS.log, "a") as log:
            extra = "".join(f" {name.lower()}={self.headers[name]}" for name in LOGGED_HEADERS
                            if self.headers.get(name))
            log.write(f"{self.conn_id} {self.command} {self.path}{extra}\n")
        if ARGS.secret:
            problem = self.check_signature(body)
            if problem:
                with LOG_LOCK, open(ARGS.log, "a") as log:
                    log.write(f"{self.conn_id} SIGNATURE-ERROR {problem}\n")
                return self.reply(403, error_xml("SignatureDoesNotMatch", problem))
        fault = take_fault(self.command, self.path)
        if fault == "500":
            return self.reply(500, error_xml("InternalError", "injected"))
        if fault == "slowdown":
            return self.reply(503, error_xml("SlowDown", "Please reduce your request rate."))
        if fault == "reset":
            return self.reset()
        if fault == "hang":
            time.sleep(3600)
            return self.reset()
        if fault and fault.startswith("stall:"):
            time.sleep(float(fault[6:]))
        if fault and fault.startswith("wait:"):
            deadline = time.monotonic() + 120
            while not os.path.exists(fault[5:]) and time.monotonic() < deadline:
                time.sleep(0.05)
        upstream = http.client.HTTPConnection(ARGS.upstream_host, ARGS.upstream_port, timeout=60)
        headers = {k: v for k, v in self.headers.items()}
        upstream.request(self.command, self.path, body=body, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        upstream.close()
        skip = {"connection", "keep-alive", "transfer-encoding", "content-length"}
        relay = [(k, v) for k, v in response.getheaders() if k.lower() not in skip]
        if fault == "cut" and len(data) > 1:
            self.send_response(response.status)
            for name, value in relay:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            time.sleep(0.2)
            return self.reset()
        if self.command == "HEAD":
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in ("connection", "keep-alive", "transfer-encoding"):
                    self.send_header(name, value)
            self.end_headers()
            return None
        return self.reply(response.status, data, relay)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", required=True, help="http://host:port of the S3 server")
    parser.add_argument("--port-file", required=True, help="the listening port is written here")
    parser.add_argument("--plan", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--access-key", default="")
    parser.add_argument("--secret", default="", help="verify SigV4 with this secret key")
    parser.add_argument("--session-token-prefix", default="",
                        help="require a signed x-amz-security-token starting with this")
    ARGS = parser.parse_args()
    upstream = urllib.parse.urlsplit(ARGS.upstream)
    ARGS.upstream_host, ARGS.upstream_port = upstream.hostname, upstream.port
    serve_http(Handler, ARGS.port_file)


if __name__ == "__main__":
    sys.exit(main())
