"""Shared by the loopback test servers in tests/lib (fault_proxy.py, fake_aws_credentials.py,
latency_proxy.py) and the test-side S3 client (s3_client.py): publishing the port a server
bound, serving HTTP on 127.0.0.1, and AWS Signature V4 as the tests compute it independently of
walstore's own signer."""
import hashlib
import hmac
import os
from http.server import ThreadingHTTPServer


def publish_port(port_file, port):
    """Writes PORT to PORT_FILE atomically (the shell helpers poll for the file)."""
    with open(port_file + ".tmp", "w") as f:
        f.write(f"{port}\n")
    os.replace(port_file + ".tmp", port_file)


def serve_http(handler, port_file):
    """Serves HANDLER on a free 127.0.0.1 port, published in PORT_FILE, until killed."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    publish_port(port_file, server.server_address[1])
    server.serve_forever()


def sigv4_signature(secret, method, canonical_path, canonical_query, headers, signed,
                    payload_hash, amz_date, scope):
    """The SigV4 signature (hex) of a request: HEADERS a dict of lower-case names, SIGNED the
    sorted names signed, SCOPE (date, region, service)."""
    canonical_headers = "".join(f"{n}:{' '.join(str(headers.get(n, '')).split())}\n" for n in signed)
    creq = "\n".join([method, canonical_path, canonical_query, canonical_headers,
                      ";".join(signed), payload_hash])
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, "/".join([*scope, "aws4_request"]),
                     hashlib.sha256(creq.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (*scope, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
