#!/usr/bin/env python3
"""A minimal S3 client for walstore's tests: reads and writes objects behind walstore's back.

It talks to $S3_ENDPOINT (the server itself, never the fault proxy) as $AWS_ACCESS_KEY_ID with
SigV4 (path-style, signed payload), trusting $S3_CA_BUNDLE for https.  Commands (keys are
relative to the bucket $S3_BUCKET):
  make-bucket            creates $S3_BUCKET
  get KEY FILE           writes the object's body to FILE and its x-amz-meta-* headers to
                         FILE.meta (JSON); exit 1 if it is absent
  put KEY FILE           stores FILE as KEY (overwriting), with the x-amz-meta-* headers of
                         FILE.meta when that exists
  head KEY               prints "<status>" and then "<header>: <value>" lines
  count PREFIX           prints how many keys start with PREFIX (ListObjectsV2, every page)
  probe-conditional PREFIX
                         measures how the store treats If-None-Match: * on an existing key, for a
                         PUT and for a CompleteMultipartUpload, and prints two lines:
                           put: <status> kept|overwritten
                           complete: <status> kept|overwritten
Python 3 standard library only.
"""
import datetime
import hashlib
import http.client
import json
import os
import ssl
import sys
import urllib.parse
import xml.etree.ElementTree as ET

from loopback_util import sigv4_signature


def xml_root(data):
    """The document's root with the namespaces taken out of the tag names (s3rver has none)."""
    root = ET.fromstring(data)
    for element in root.iter():
        element.tag = element.tag.rpartition("}")[2]
    return root


def quote(text, safe="-_.~"):
    return urllib.parse.quote(text, safe=safe)


class Client:
    def __init__(self):
        endpoint = urllib.parse.urlsplit(os.environ["S3_ENDPOINT"])
        self.https = endpoint.scheme == "https"
        self.host, self.port = endpoint.hostname, endpoint.port
        self.netloc = endpoint.netloc
        self.access_key = os.environ["AWS_ACCESS_KEY_ID"]
        self.secret = os.environ["AWS_SECRET_ACCESS_KEY"]
        self.region = os.environ.get("AWS_REGION", "us-east-1")
        self.bucket = os.environ["S3_BUCKET"]

    def connection(self):
        if not self.https:
            return http.client.HTTPConnection(self.host, self.port, timeout=60)
        context = ssl.create_default_context(cafile=os.environ.get("S3_CA_BUNDLE") or None)
        return http.client.HTTPSConnection(self.host, self.port, timeout=60, context=context)

    def request(self, method, key=None, query=(), headers=None, body=b""):
        """Sends one signed request; returns (status, headers as a lower-case dict, body)."""
        path = "/" + self.bucket + ("/" + key if key is not None else "")
        canonical_path = quote(path, safe="/-_.~")
        pairs = sorted((quote(n), quote(v)) for n, v in query)
        canonical_query = "&".join(f"{n}={v}" for n, v in pairs)
        now = datetime.datetime.now(datetime.timezone.utc)
        amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        payload_hash = hashlib.sha256(body).hexdigest()
        all_headers = {k.lower(): v for k, v in (headers or {}).items()}
        all_headers.update({"host": self.netloc, "x-amz-date": amz_date,
                            "x-amz-content-sha256": payload_hash})
        signed = sorted(all_headers)
        scope = (day, self.region, "s3")
        signature = sigv4_signature(self.secret, method, canonical_path, canonical_query,
                                    all_headers, signed, payload_hash, amz_date, scope)
        all_headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.access_key}/{'/'.join(scope)}/aws4_request, "
            f"SignedHeaders={';'.join(signed)}, Signature={signature}")
        conn = self.connection()
        target = canonical_path + ("?" + canonical_query if canonical_query else "")
        conn.request(method, target, body=body, headers=all_headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def checked(self, what, expected, *args, **kwargs):
        status, headers, data = self.request(*args, **kwargs)
        if status not in expected:
            sys.exit(f"s3_client: {what}: HTTP {status}: {data[:500]!r}")
        return status, headers, data

    def get_body(self, key):
        status, _, data = self.request("GET", key)
        return data if status == 200 else None


def meta_headers(headers):
    return {k: v for k, v in headers.items() if k.startswith("x-amz-meta-")}


def make_bucket(client):
    client.checked("create the bucket", (200,), "PUT")


def get(client, key, path):
    status, headers, data = client.request("GET", key)
    if status == 404:
        return 1
    if status != 200:
        sys.exit(f"s3_client: GET {key}: HTTP {status}: {data[:500]!r}")
    with open(path, "wb") as f:
        f.write(data)
    with open(path + ".meta", "w") as f:
        json.dump(meta_headers(headers), f)
    return 0


def put(client, key, path):
    with open(path, "rb") as f:
        body = f.read()
    headers = {}
    if os.path.exists(path + ".meta"):
        with open(path + ".meta") as f:
            headers = json.load(f)
    client.checked(f"PUT {key}", (200,), "PUT", key, headers=headers, body=body)
    return 0


def head(client, key):
    status, headers, _ = client.request("HEAD", key)
    print(status)
    for name, value in sorted(headers.items()):
        print(f"{name}: {value}")
    return 0


def count(client, prefix):
    total, token = 0, None
    while True:
        query = [("list-type", "2"), ("prefix", prefix)]
        if token:
            query.append(("continuation-token", token))
        _, _, data = client.checked("ListObjectsV2", (200,), "GET", query=query)
        root = xml_root(data)
        total += len(root.findall("Contents"))
        token = root.findtext("NextContinuationToken")
        if root.findtext("IsTruncated") != "true" or not token:
            break
    print(total)
    return 0


def probe_conditional(client, prefix):
    original, other = b"original " * 1000, b"replacement " * 1000
    key = prefix + "/put"
    client.checked("PUT the original", (200,), "PUT", key, body=original)
    status, _, _ = client.request("PUT", key, headers={"If-None-Match": "*"}, body=other)
    kept = client.get_body(key) == original
    print(f"put: {status} {'kept' if kept else 'overwritten'}")

    key = prefix + "/complete"
    client.checked("PUT the original", (200,), "PUT", key, body=original)
    _, _, data = client.checked("CreateMultipartUpload", (200,), "POST", key, [("uploads", "")])
    upload_id = xml_root(data).findtext("UploadId")
    _, headers, _ = client.checked("UploadPart", (200,), "PUT", key,
                                   [("partNumber", "1"), ("uploadId", upload_id)], body=other)
    body = ("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
            f"<ETag>{headers['etag']}</ETag></Part></CompleteMultipartUpload>").encode()
    status, _, data = client.request("POST", key, [("uploadId", upload_id)],
                                     {"If-None-Match": "*"}, body)
    if status == 200 and b"<Error>" in data:
        status = "200-error"
    kept = client.get_body(key) == original
    print(f"complete: {status} {'kept' if kept else 'overwritten'}")
    client.request("DELETE", key, [("uploadId", upload_id)])
    return 0


def main(argv):
    commands = {"make-bucket": (make_bucket, 0), "get": (get, 2), "put": (put, 2),
                "head": (head, 1), "count": (count, 1),
                "probe-conditional": (probe_conditional, 1)}
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 != commands[argv[1]][1]:
        sys.exit(__doc__)
    function, _ = commands[argv[1]]
    return function(Client(), *argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
