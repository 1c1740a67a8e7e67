#!/usr/bin/env python3
"""A loopback fake of the AWS credential endpoints, for walstore's S3 tests.

It serves, on 127.0.0.1 and a free port (written to --port-file):
  * STS AssumeRoleWithWebIdentity: POST / with a form body; the Action, the
    RoleArn (--role-arn) and the WebIdentityToken (--web-identity-token) must
    match, else 403 AccessDenied in an STS <ErrorResponse>;
  * container credentials: GET /container, whose Authorization header must
    be --container-auth, else 401;
  * EC2 instance metadata, IMDSv2 only: PUT /latest/api/token (with
    X-aws-ec2-metadata-token-ttl-seconds) gives a session token that the GETs
    of /latest/meta-data/iam/security-credentials/ (the role name) and
    /latest/meta-data/iam/security-credentials/<role> must carry, else 401.
Each hands out --access-key / --secret with the session token
"fake-<source>-token-<n>" (n counts credential replies) expiring --lifetime
seconds later, and appends "<source> <n>" to --log.

Python 3 standard library only.
"""
import argparse
import datetime
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler

from loopback_util import serve_http

ARGS = None
LOCK = threading.Lock()
COUNT = [0]
IMDS_TOKEN = "imds-session-token"
ROLE = "walstore-role"
ROLE_PATH = "/latest/meta-data/iam/security-credentials/"


def hand_out(source):
    """The next credentials: (key, secret, token, expiration), logged."""
    with LOCK:
        COUNT[0] += 1
        n = COUNT[0]
        with open(ARGS.log, "a") as log:
            log.write(f"{source} {n}\n")
    expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=ARGS.lifetime)
    return ARGS.access_key, ARGS.secret, f"fake-{source}-token-{n}", expiry.strftime("%Y-%m-%dT%H:%M:%SZ")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body, content_type="application/json"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def credentials_json(self, source, extra=None):
        key, secret, token, expiration = hand_out(source)
        document = dict(extra or {}, AccessKeyId=key, SecretAccessKey=secret, Token=token,
                        Expiration=expiration)
        self.reply(200, json.dumps(document))

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        field = lambda name: form.get(name, [""])[0]
        if (self.path != "/" or field("Action") != "AssumeRoleWithWebIdentity" or
                field("RoleArn") != ARGS.role_arn or
                field("WebIdentityToken") != ARGS.web_identity_token):
            return self.reply(403, "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied"
                              "</Code><Message>refused</Message></Error></ErrorResponse>",
                              "text/xml")
        key, secret, token, expiration = hand_out("sts")
        self.reply(200, '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/'
                   '2011-06-15/"><AssumeRoleWithWebIdentityResult><Credentials>'
                   f"<AccessKeyId>{key}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey>"
                   f"<SessionToken>{token}</SessionToken><Expiration>{expiration}</Expiration>"
                   "</Credentials></AssumeRoleWithWebIdentityResult>"
                   "</AssumeRoleWithWebIdentityResponse>", "text/xml")

    def do_PUT(self):
        if self.path != "/latest/api/token" or not self.headers.get(
                "X-aws-ec2-metadata-token-ttl-seconds"):
            return self.reply(400, "")
        self.reply(200, IMDS_TOKEN, "text/plain")

    def do_GET(self):
        if self.path == "/container":
            if self.headers.get("Authorization") != ARGS.container_auth:
                return self.reply(401, '{"message": "bad authorization"}')
            return self.credentials_json("container")
        if self.path.startswith(ROLE_PATH):
            if self.headers.get("X-aws-ec2-metadata-token") != IMDS_TOKEN:
                return self.reply(401, "")
            if self.path == ROLE_PATH:
                return self.reply(200, ROLE, "text/plain")
            if self.path == ROLE_PATH + ROLE:
                return self.credentials_json("imds", {"Code": "Success", "Type": "AWS-HMAC"})
        self.reply(404, "")


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--access-key", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--lifetime", type=int, default=3600)
    parser.add_argument("--role-arn", default="arn:aws:iam::000000000000:role/walstore")
    parser.add_argument("--web-identity-token", default="fake-web-identity-token")
    parser.add_argument("--container-auth", default="fake-container-authorization")
    ARGS = parser.parse_args()
    serve_http(Handler, ARGS.port_file)


if __name__ == "__main__":
    main()
