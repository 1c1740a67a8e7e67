#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

    tests/fuzz/make_corpus.py BUILD_DIR [--base-backup DIR]

BUILD_DIR is a walstore build (normal or fuzz) whose fuzz_make_object_seeds
writes the object decoder's seeds (real objects from ObjectEncoder).  With
--base-backup, the directory of a `pg_basebackup -Ft` of PostgreSQL 15 gives
the "real" tar and manifest seeds (its first entries; the manifest cut to a
few files with its checksum recomputed), as committed.  Everything else is
written from the samples below.  Seeds stay small: libFuzzer's default
-max_len is the largest seed.
"""
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def manifest(files, wal_ranges):
    """A backup_manifest in PostgreSQL 15's exact layout, with its checksum."""
    body = '{ "PostgreSQL-Backup-Manifest-Version": 1,\n"Files": [\n'
    body += ",\n".join(files) + "\n],\n"
    body += '"WAL-Ranges": [\n' + ",\n".join(wal_ranges) + "\n],\n"
    return body + '"Manifest-Checksum": "%s"}\n' % hashlib.sha256(body.encode()).hexdigest()


def manifest_seeds():
    f = '{ "Path": "%s", "Size": %d, "Last-Modified": "2026-11-29 10:21:00 GMT", ' \
        '"Checksum-Algorithm": "%s", "Checksum": "%s" }'
    wal = '{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }'
    put("manifest", "crc32c", manifest([f % ("PG_VERSION", 3, "CRC32C", "a5b8ce8c"),
                                        f % ("global/pg_control", 8192, "CRC32C", "0badc0de")],
                                       [wal]))
    put("manifest", "sha256_encoded_path", manifest(
        [f % ("base/1/1259", 0, "SHA256", hashlib.sha256(b"").hexdigest()),
         '{ "Encoded-Path": "626173652f31", "Size": 0, "Last-Modified": "2026-11-29 10:21:00 GMT" }'],
        [wal, '{ "Timeline": 2, "Start-LSN": "0/3000000", "End-LSN": "0/3000100" }']))
    put("manifest", "no_files", manifest([], [wal]))


def tar_seeds():
    def archive(fmt, entries):
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=fmt) as t:
            for name, kind, data in entries:
                info = tarfile.TarInfo(name)
                info.mtime = 1795000000
                info.mode = 0o600
                if kind == "dir":
                    info.type, info.mode = tarfile.DIRTYPE, 0o700
                elif kind == "symlink":
                    info.type, info.linkname = tarfile.SYMTYPE, data
                    data = b""
                elif kind == "hardlink":
                    info.type, info.linkname = tarfile.LNKTYPE, data
                    data = b""
                info.size = len(data) if kind == "file" else 0
                t.addfile(info, io.BytesIO(data) if kind == "file" else None)
        return out.getvalue()

    entries = [("PG_VERSION", "file", b"15\n"), ("base", "dir", b""), ("base/1", "dir", b""),
               ("base/1/112", "file", b"\x00" * 700), ("pg_wal", "symlink", "/srv/wal")]
    put("tar_reader", "ustar", archive(tarfile.USTAR_FORMAT, entries))
    long_name = "pg_tblspc/16385/PG_15_202209061/5/" + "x" * 120
    put("tar_reader", "pax_long_name", archive(tarfile.PAX_FORMAT, entries[:1] + [
        (long_name, "file", b"data\n"), ("hard", "hardlink", "PG_VERSION")]))
    put("tar_reader", "gnu_long_name", archive(tarfile.GNU_FORMAT, [
        (long_name, "file", b"data\n"), (long_name + "/l", "symlink", "y" * 120)]))


def base_backup_seeds(directory):
    """The first entries of a real base.tar and a cut real backup_manifest."""
    with open(os.path.join(directory, "base.tar"), "rb") as f:
        raw = f.read()
    end = 0
    with tarfile.open(os.path.join(directory, "base.tar")) as t:
        for info in t:
            stop = info.offset_data + (info.size + 511) // 512 * 512
            if stop > 16384:
                break
            end = stop
    put("tar_reader", "pg15_base_head", raw[:end])
    with open(os.path.join(directory, "backup_manifest")) as f:
        text = f.read()
    doc = json.loads(text)
    lines = text.split("\n")
    files = [l.rstrip(",") for l in lines if l.startswith('{ "Path"')][:6]
    wal = [json.dumps(r, separators=(", ", ": ")).replace("{", "{ ").replace("}", " }")
           for r in doc["WAL-Ranges"]]
    algorithm = doc["Files"][0].get("Checksum-Algorithm", "none").lower()
    put("manifest", "pg15_" + algorithm, manifest(files, wal))


def backup_record_seeds():
    record = {
        "format": 1, "label": "20261129T102100Z", "status": "complete",
        "system_id": "7442188291839016471", "pg_version": 150014, "timeline": 1,
        "stop_timeline": 1, "start_lsn": "0/2000028", "stop_lsn": "0/2000100",
        "start_time": "2026-11-29 10:21:00 UTC", "stop_time": "2026-11-29 10:21:02 UTC",
        "start_epoch": 1795861260.0, "stop_epoch": 1795861262.0, "segment_size": 16777216,
        "wal_start": "000000010000000000000002", "wal_stop": "000000010000000000000002",
        "size": 23504384, "stored_size": 3141592, "manifest_checksums": "CRC32C",
        "compression": "lz4", "encrypted": True, "key_id": "0123456789abcdef",
        "archives": [
            {"name": "base.tar", "size": 23504384, "stored_size": 3000000,
             "sha256": hashlib.sha256(b"base").hexdigest()},
            {"name": "16385.tar", "size": 10240, "stored_size": 2048, "sha256": "",
             "tablespace_oid": 16385, "tablespace_path": "/srv/ts1"}],
        "manifest": {"name": "backup_manifest", "size": 137181, "stored_size": 30000,
                     "sha256": hashlib.sha256(b"manifest").hexdigest()},
    }
    put("backup_record", "complete", json.dumps(record, indent=2))
    record.update(status="incomplete", encrypted=False, key_id="", archives=[])
    put("backup_record", "incomplete_compact", json.dumps(record))
    put("backup_record", "other_format", '{"format": 2, "label": "x"}')


def s3_xml_seeds():
    ns = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
    put("s3_xml", "list", '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult%s>'
        "<Name>bucket</Name><Prefix>walstore/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys>"
        "<IsTruncated>false</IsTruncated><Contents><Key>walstore/7442188291839016471/wal/"
        "0000000100000000/000000010000000000000002</Key><LastModified>2026-11-29T10:21:00.000Z"
        "</LastModified><ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>1048576"
        "</Size><StorageClass>STANDARD</StorageClass></Contents><Contents><Key>a&amp;b</Key>"
        "<LastModified>1970-01-01T00:00:00Z</LastModified><Size>0</Size></Contents>"
        "</ListBucketResult>" % ns)
    put("s3_xml", "list_truncated", "<ListBucketResult><IsTruncated>true</IsTruncated>"
        "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
        "<Contents><Key>k</Key><Size>18446744073709551615</Size></Contents></ListBucketResult>")
    put("s3_xml", "error", '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
        "<Message>Please reduce your request rate.</Message><RequestId>4442587FB7D0A2F9</RequestId>"
        "</Error>")
    put("s3_xml", "delete_result", '<DeleteResult%s><Deleted><Key>a</Key></Deleted><Error><Key>b'
        "</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error></DeleteResult>" % ns)
    put("s3_xml", "multipart", '<?xml version="1.0" encoding="UTF-8"?>\n<InitiateMultipartUploadResult'
        '%s><Bucket>bucket</Bucket><Key>k</Key><UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5t'
        "MnRzIHVwbG9hZA</UploadId></InitiateMultipartUploadResult>" % ns)
    put("s3_xml", "cdata_entities", "<!DOCTYPE x [<!ENTITY e 'v'>]><Error><Code><![CDATA[X]]>"
        "</Code><Message>&lt;&#x41;&#65;&e;</Message></Error>")


def config_seeds():
    put("config", "full", """# walstore.toml
repository = "s3://bucket/walstore"
compression = "zstd:9"
encryption_key_file = "/etc/walstore/key"
encryption_old_key_files = ["/etc/walstore/key.1", "/etc/walstore/key.0"]
log_level = "info"
system_id = "7442188291839016471"
chunk_size = 1048576
parallel = 4
prefetch = 8
push_ahead = 16

[s3]
endpoint = "https://minio.example.com:9000"
region = "eu-west-1"
path_style = true
storage_class = "STANDARD_IA"
sse = "aws:kms"
sse_kms_key_id = "arn:aws:kms:eu-west-1:111122223333:key/abc"
ca_bundle = "/etc/ssl/ca.pem"
ca_path = "/etc/ssl/certs"
verify_tls = false
profile = "walstore"
access_key_id = "AKIDEXAMPLE"
secret_access_key = "wJalrXUtnFEMI/K7MDENG"
session_token = "token"
multipart_threshold = 67108864
part_size = 16777216
connect_timeout_seconds = 10.5
low_speed_seconds = 30
retry_total_seconds = 120
max_attempts = 8
""")
    put("config", "minimal", 'repository = "file:///var/lib/walstore"\n')
    put("config", "inline_table", 'system_id = 7442188291839016471\ns3 = { region = "us-east-1", '
        "path_style = false }\ncompression = 'lz4:4'\n")
    put("config", "unknown_setting", 'repository = "file:///r"\nrepositry = "typo"\n')


def name_seeds():
    for name in ["000000010000000A000000FE", "000000010000000A000000FE.partial", "00000002.history",
                 "000000010000000A000000FE.00000028.backup", "00000001000000000000000A",
                 "FFFFFFFFFFFFFFFFFFFFFFFF"]:
        put("wal_name", name, name)


def wal_header_seeds():
    def header(magic, info, tli, pageaddr, sysid, seg_size, blcksz):
        h = struct.pack("<HHIQI4xQII", magic, info, tli, pageaddr, 0, sysid, seg_size, blcksz)
        return h + b"\x00" * (8192 - len(h))  # the rest of the first page
    put("wal_header", "pg15_16mib", header(0xD110, 0x0002, 1, 0xA_FE000000, 7442188291839016471,
                                            16 << 20, 8192)[:64])
    put("wal_header", "pg15_1gib_tli2", header(0xD110, 0x0006, 2, 1 << 30, 1, 1 << 30, 32768)[:64])
    put("wal_header", "pg9_short_header", header(0xD07E, 0x0000, 1, 0, 0, 16 << 20, 8192)[:40])


def sigv4_seeds():
    put("sigv4", "list", "walstore/7442188291839016471/wal/\nlist-type\n2\nprefix\nwalstore/74/\n"
        "continuation-token\n1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=\n\nmeta  value")
    put("sigv4", "multipart", "key with spaces/ü+%20*~\nuploadId\nVXBsb2Fk+/=\npartNumber\n10000\n"
        "uploads\n\n\t a  b \t")
    put("sigv4", "dots", "a//b/./../c\n\xff\x00\n=&\n")


def credentials_seeds():
    # Fake keys in the shape of AWS's documentation examples, never real ones.
    key, secret = "ASIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    put("credentials", "sts_reply", '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.'
        'amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult><Credentials>'
        "<AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey><SessionToken>"
        "FwoGZXIvYXdzEXAMPLE</SessionToken><Expiration>2026-11-29T11:21:00Z</Expiration>"
        "</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
        % (key, secret))
    put("credentials", "sts_error", "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied"
        "</Code><Message>Not authorized</Message></Error><RequestId>x</RequestId></ErrorResponse>")
    put("credentials", "container", json.dumps({
        "AccessKeyId": key, "SecretAccessKey": secret, "Token": "FwoGZXIvYXdzEXAMPLE",
        "Expiration": "2026-11-29T11:21:00Z", "RoleArn": "arn:aws:iam::123456789012:role/r"}))
    put("credentials", "imds", json.dumps({
        "Code": "Success", "LastUpdated": "2026-11-29T10:21:00Z", "Type": "AWS-HMAC",
        "AccessKeyId": key, "SecretAccessKey": secret, "Token": "FwoGZXIvYXdzEXAMPLE",
        "Expiration": "2026-11-29T16:21:00Z"}, indent=2))
    put("credentials", "process", json.dumps({
        "Version": 1, "AccessKeyId": key, "SecretAccessKey": secret}))
    put("credentials", "shared_credentials", "# ~/.aws/credentials\n[default]\n"
        "aws_access_key_id = %s\naws_secret_access_key=%s\n\n[profile prod]\n"
        "aws_access_key_id = AKIAI44QH8DHBEXAMPLE\r\n; comment\n[prod]\n"
        "credential_process = /usr/bin/fetch-creds --json\n" % (key, secret))
    put("credentials", "config", "[default]\nregion = eu-west-1\n[profile prod]\n"
        "role_arn=arn:aws:iam::123456789012:role/r\ncredential_process = fetch-creds\n[prod\n")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    build = sys.argv[1]
    manifest_seeds()
    tar_seeds()
    backup_record_seeds()
    s3_xml_seeds()
    config_seeds()
    name_seeds()
    wal_header_seeds()
    sigv4_seeds()
    credentials_seeds()
    if "--base-backup" in sys.argv:
        base_backup_seeds(sys.argv[sys.argv.index("--base-backup") + 1])
    out = os.path.join(CORPUS, "object_decoder")
    os.makedirs(out, exist_ok=True)
    subprocess.run([os.path.join(build, "tests", "fuzz", "fuzz_make_object_seeds"), out], check=True)


if __name__ == "__main__":
    main()
