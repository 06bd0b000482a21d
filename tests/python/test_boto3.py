"""boto3 with default settings against tristore's S3 port.

Usage: python test_boto3.py http://127.0.0.1:<s3 port>   (or https://, trusting the server's
certificate through AWS_CA_BUNDLE and SSL_CERT_FILE)
Run by tests/python_clients.rs, which installs boto3 into its own virtual environment.
"""

import base64
import hashlib
import io
import socket
import sys
import unittest
import urllib.error
import urllib.request

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = sys.argv.pop(1)
KEYS = dict(aws_access_key_id="tristore", aws_secret_access_key="tristore-secret")


def client(endpoint=ENDPOINT, **config):
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="auto", config=Config(**config), **KEYS
    )


def error_code(call):
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"]
    raise AssertionError("the call succeeded")


class Boto3(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s3 = client()
        cls.s3.create_bucket(Bucket="boto")

    def test_objects_metadata_listing_and_delete(self):
        s3 = self.s3
        s3.create_bucket(Bucket="listing")
        put = s3.put_object(
            Bucket="listing",
            Key="notes/ü & more.txt",
            Body=b"hello boto",
            ContentType="text/plain",
            CacheControl="max-age=60",
            Metadata={"docid": "doc-1"},
        )
        self.assertEqual(put["ETag"], '"%s"' % hashlib.md5(b"hello boto").hexdigest())
        got = s3.get_object(Bucket="listing", Key="notes/ü & more.txt")
        self.assertEqual(got["Body"].read(), b"hello boto")
        self.assertEqual(got["ContentType"], "text/plain")
        self.assertEqual(got["CacheControl"], "max-age=60")
        self.assertEqual(got["Metadata"], {"docid": "doc-1"})
        head = s3.head_object(Bucket="listing", Key="notes/ü & more.txt")
        self.assertEqual(head["ContentLength"], 10)
        part = s3.get_object(Bucket="listing", Key="notes/ü & more.txt", Range="bytes=0-4")
        self.assertEqual(part["Body"].read(), b"hello")
        self.assertEqual(part["ResponseMetadata"]["HTTPStatusCode"], 206)

        for i in range(7):
            s3.put_object(Bucket="listing", Key="many/%02d" % i, Body=b"x")
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket="listing", Prefix="many/", PaginationConfig={"PageSize": 3}
        )
        keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
        self.assertEqual(keys, ["many/%02d" % i for i in range(7)])
        v1 = s3.get_paginator("list_objects").paginate(
            Bucket="listing", Delimiter="/", PaginationConfig={"PageSize": 1}
        )
        prefixes = [p["Prefix"] for page in v1 for p in page.get("CommonPrefixes", [])]
        self.assertEqual(prefixes, ["many/", "notes/"])
        encoded = s3.list_objects_v2(Bucket="listing", Prefix="notes/")
        self.assertEqual(encoded["Contents"][0]["Key"], "notes/ü & more.txt")

        s3.copy_object(
            Bucket="listing",
            Key="copies/one.txt",
            CopySource={"Bucket": "listing", "Key": "notes/ü & more.txt"},
            MetadataDirective="REPLACE",
            Metadata={"docid": "doc-2"},
            ContentType="text/markdown",
        )
        copied = s3.head_object(Bucket="listing", Key="copies/one.txt")
        self.assertEqual(copied["Metadata"], {"docid": "doc-2"})
        self.assertEqual(copied["ContentType"], "text/markdown")

        out = s3.delete_objects(
            Bucket="listing",
            Delete={"Objects": [{"Key": "many/%02d" % i} for i in range(7)]},
        )
        self.assertEqual(len(out["Deleted"]), 7)
        self.assertNotIn("Contents", s3.list_objects_v2(Bucket="listing", Prefix="many/"))

    def test_errors(self):
        s3 = self.s3
        self.assertEqual(error_code(lambda: s3.get_object(Bucket="boto", Key="absent")), "NoSuchKey")
        self.assertEqual(error_code(lambda: s3.head_object(Bucket="boto", Key="absent")), "404")
        self.assertEqual(error_code(lambda: s3.list_objects_v2(Bucket="nobucket")), "NoSuchBucket")
        self.assertEqual(error_code(lambda: s3.create_bucket(Bucket="boto")), "BucketAlreadyExists")
        self.assertEqual(error_code(lambda: s3.create_bucket(Bucket="Bad_Name")), "InvalidBucketName")
        wrong = boto3.client(
            "s3", endpoint_url=ENDPOINT, region_name="auto",
            aws_access_key_id="tristore", aws_secret_access_key="wrong",
        )
        self.assertEqual(error_code(lambda: wrong.list_buckets()), "SignatureDoesNotMatch")
        self.assertEqual(
            error_code(lambda: s3.put_object(
                Bucket="boto", Key="md5", Body=b"data", ContentMD5="AAAAAAAAAAAAAAAAAAAAAA=="
            )),
            "BadDigest",
        )
        self.assertEqual(
            error_code(lambda: s3.put_bucket_tagging(
                Bucket="boto", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}
            )),
            "NotImplemented",
        )
        self.assertEqual(error_code(lambda: s3.get_object(Bucket="boto", Key="md5")), "NoSuchKey")
        self.assertEqual(
            error_code(lambda: s3.put_bucket_versioning(
                Bucket="boto", VersioningConfiguration={"Status": "Enabled"}
            )),
            "NotImplemented",
        )
        self.assertNotIn("Status", s3.get_bucket_versioning(Bucket="boto"))
        self.assertIn(s3.get_bucket_location(Bucket="boto").get("LocationConstraint"), ("auto", None))

    def test_multipart_transfer_and_download(self):
        data = bytes(range(256)) * (12 * 1024 * 1024 // 256 + 3)
        config = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
        self.s3.upload_fileobj(
            io.BytesIO(data), "boto", "big/file.bin", Config=config,
            ExtraArgs={"ChecksumAlgorithm": "CRC32"},
        )
        head = self.s3.head_object(Bucket="boto", Key="big/file.bin")
        self.assertTrue(head["ETag"].endswith('-3"'), head["ETag"])
        out = io.BytesIO()
        self.s3.download_fileobj("boto", "big/file.bin", out, Config=config)
        self.assertEqual(out.getvalue(), data)

    def test_presigned_urls(self):
        url = self.s3.generate_presigned_url(
            "put_object", Params={"Bucket": "boto", "Key": "signed/up.txt"}, ExpiresIn=300
        )
        request = urllib.request.Request(url, data=b"via presigned PUT", method="PUT")
        with urllib.request.urlopen(request) as r:
            self.assertEqual(r.status, 200)
        url = self.s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": "boto", "Key": "signed/up.txt", "ResponseContentType": "text/x-test"},
            ExpiresIn=300,
        )
        with urllib.request.urlopen(url) as r:
            self.assertEqual(r.read(), b"via presigned PUT")
            self.assertEqual(r.headers["Content-Type"], "text/x-test")
        with self.assertRaises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(url.replace("up.txt", "other.txt"))
        self.assertEqual(caught.exception.code, 403)

    def test_unsigned_headers_cannot_turn_a_presigned_put_into_a_copy(self):
        # The audit's repro: a presigned PUT for one's own key plus an unsigned
        # x-amz-copy-source must not copy another bucket's object.
        s3 = self.s3
        s3.create_bucket(Bucket="victim-bucket")
        s3.create_bucket(Bucket="uploads")
        s3.put_object(Bucket="victim-bucket", Key="secret.txt", Body=b"TOP-SECRET-DATA")
        params = {"Bucket": "uploads", "Key": "user-7/avatar.png"}
        put = s3.generate_presigned_url("put_object", Params=params)
        get = s3.generate_presigned_url("get_object", Params=params)
        copy = urllib.request.Request(
            put, data=b"", method="PUT", headers={"x-amz-copy-source": "/victim-bucket/secret.txt"}
        )
        with self.assertRaises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(copy)
        self.assertEqual(caught.exception.code, 403)
        body = caught.exception.read()
        self.assertIn(b"<Code>AccessDenied</Code>", body)
        self.assertIn(b"<HeadersNotSigned>x-amz-copy-source</HeadersNotSigned>", body)
        with self.assertRaises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(get)
        self.assertEqual(caught.exception.code, 404)

    def test_header_values_beyond_ascii_are_signed_and_kept_as_sent(self):
        # botocore signs the text (UTF-8 in the canonical request) and http.client sends
        # it as ISO-8859-1 bytes, as S3 reads them.
        s3 = client()
        s3.meta.events.register(
            "before-call.s3.PutObject",
            lambda **kw: kw["params"]["headers"].__setitem__("x-amz-meta-meta1", "Hello World\xe9"),
        )
        s3.put_object(Bucket="boto", Key="latin-1", Body=b"x")
        got = self.s3.get_object(Bucket="boto", Key="latin-1")
        self.assertEqual(got["Metadata"], {"meta1": "Hello World\xe9"})

    def test_keys_with_control_characters_round_trip(self):
        # Kept, as S3 keeps them; boto3 lists with encoding-type=url, so expat never
        # sees the character references it refuses.
        keys = ["ctl/a\x00b", "ctl/bell\x07", "ctl/cr\rlf"]
        for key in keys:
            self.s3.put_object(Bucket="boto", Key=key, Body=key.encode())
            self.assertEqual(self.s3.get_object(Bucket="boto", Key=key)["Body"].read(), key.encode())
        listed = self.s3.list_objects_v2(Bucket="boto", Prefix="ctl/")
        self.assertEqual([o["Key"] for o in listed["Contents"]], sorted(keys))

    def test_customer_encryption_keys(self):
        s3 = self.s3
        key_a, key_b = bytes(range(32)), bytes(range(100, 132))
        md5_a = base64.b64encode(hashlib.md5(key_a).digest()).decode()

        def sse(key, prefix=""):
            # boto3 base64-encodes the key and adds its MD5 itself.
            return {prefix + "SSECustomerAlgorithm": "AES256", prefix + "SSECustomerKey": key}

        large = bytes(i % 251 for i in range(3 * 1024 * 1024 + 5))
        for name, data in [("sse/small", b"small secret"), ("sse/large", large)]:
            put = s3.put_object(Bucket="boto", Key=name, Body=data, **sse(key_a))
            self.assertEqual((put["SSECustomerAlgorithm"], put["SSECustomerKeyMD5"]), ("AES256", md5_a))
            self.assertNotEqual(put["ETag"], '"%s"' % hashlib.md5(data).hexdigest())
            got = s3.get_object(Bucket="boto", Key=name, **sse(key_a))
            self.assertEqual(got["Body"].read(), data)
            self.assertEqual(got["SSECustomerKeyMD5"], md5_a)
            part = s3.get_object(Bucket="boto", Key=name, Range="bytes=3-8", **sse(key_a))
            self.assertEqual(part["Body"].read(), data[3:9])
            self.assertEqual(s3.head_object(Bucket="boto", Key=name, **sse(key_a))["ContentLength"], len(data))
            # Without the key, or with another: S3's errors.
            self.assertEqual(error_code(lambda: s3.get_object(Bucket="boto", Key=name)), "InvalidRequest")
            self.assertEqual(error_code(lambda: s3.get_object(Bucket="boto", Key=name, **sse(key_b))), "AccessDenied")
            self.assertEqual(error_code(lambda: s3.head_object(Bucket="boto", Key=name)), "400")
            self.assertEqual(error_code(lambda: s3.head_object(Bucket="boto", Key=name, **sse(key_b))), "403")

        # A key for an object stored without one is refused, never ignored.
        s3.put_object(Bucket="boto", Key="sse/plain", Body=b"clear")
        self.assertEqual(error_code(lambda: s3.get_object(Bucket="boto", Key="sse/plain", **sse(key_a))), "InvalidRequest")

        # A wrong key MD5, sent as raw headers (boto3 always computes the right one).
        def wrong_md5(params, **kwargs):
            params["headers"]["x-amz-server-side-encryption-customer-key-MD5"] = "AAAAAAAAAAAAAAAAAAAAAA=="

        raw = client()
        raw.meta.events.register("before-call.s3.PutObject", wrong_md5)
        self.assertEqual(error_code(lambda: raw.put_object(Bucket="boto", Key="sse/bad", Body=b"x", **sse(key_a))), "InvalidArgument")
        self.assertEqual(error_code(lambda: s3.head_object(Bucket="boto", Key="sse/bad")), "404")

        # Copies decrypt with the source's key and encrypt with the destination's.
        s3.copy_object(Bucket="boto", Key="sse/copy", CopySource="boto/sse/small", **sse(key_a, "CopySource"), **sse(key_b))
        self.assertEqual(s3.get_object(Bucket="boto", Key="sse/copy", **sse(key_b))["Body"].read(), b"small secret")
        self.assertEqual(
            error_code(lambda: s3.copy_object(Bucket="boto", Key="sse/copy2", CopySource="boto/sse/small")),
            "InvalidRequest",
        )

        # Multipart: the key on create, on every part, and on reads.
        up = s3.create_multipart_upload(Bucket="boto", Key="sse/mp", **sse(key_a))
        self.assertEqual(up["SSECustomerKeyMD5"], md5_a)
        uid = up["UploadId"]
        p1 = (large * 2)[: 5 * 1024 * 1024]
        self.assertEqual(
            error_code(lambda: s3.upload_part(Bucket="boto", Key="sse/mp", UploadId=uid, PartNumber=1, Body=p1)),
            "InvalidRequest",
        )
        self.assertEqual(
            error_code(lambda: s3.upload_part(Bucket="boto", Key="sse/mp", UploadId=uid, PartNumber=1, Body=p1, **sse(key_b))),
            "InvalidRequest",
        )
        e1 = s3.upload_part(Bucket="boto", Key="sse/mp", UploadId=uid, PartNumber=1, Body=p1, **sse(key_a))["ETag"]
        e2 = s3.upload_part(Bucket="boto", Key="sse/mp", UploadId=uid, PartNumber=2, Body=b"tail", **sse(key_a))["ETag"]
        s3.complete_multipart_upload(
            Bucket="boto", Key="sse/mp", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
        )
        got = s3.get_object(Bucket="boto", Key="sse/mp", **sse(key_a))
        self.assertEqual(got["Body"].read(), p1 + b"tail")
        second = s3.get_object(Bucket="boto", Key="sse/mp", PartNumber=2, **sse(key_a))
        self.assertEqual(second["Body"].read(), b"tail")
        self.assertEqual(error_code(lambda: s3.get_object(Bucket="boto", Key="sse/mp", PartNumber=2)), "InvalidRequest")

    def test_virtual_host_addressing(self):
        # Resolve <bucket>.localhost as browsers and systemd-resolved do.
        real = socket.getaddrinfo

        def resolve(host, *args, **kwargs):
            if isinstance(host, str) and host.endswith(".localhost"):
                host = "127.0.0.1"
            return real(host, *args, **kwargs)

        socket.getaddrinfo = resolve
        try:
            scheme, port = ENDPOINT.split(":")[0], ENDPOINT.rsplit(":", 1)[1]
            vhost = client("%s://localhost:%s" % (scheme, port), s3={"addressing_style": "virtual"})
            vhost.put_object(Bucket="boto", Key="vhost/key.txt", Body=b"virtual")
            self.assertEqual(self.s3.get_object(Bucket="boto", Key="vhost/key.txt")["Body"].read(), b"virtual")
            listed = vhost.list_objects_v2(Bucket="boto", Prefix="vhost/")
            self.assertEqual([o["Key"] for o in listed["Contents"]], ["vhost/key.txt"])
        finally:
            socket.getaddrinfo = real


if __name__ == "__main__":
    unittest.main(verbosity=2)
