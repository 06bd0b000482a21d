"""pytest plugin for running ceph/s3-tests against tristore (loaded by scripts/s3-tests.sh).

It changes only how s3-tests empties buckets between tests, never a test body:

* s3-tests lists a bucket's contents with ListObjectVersions, which R2 does not offer
  (501 NotImplemented); without a fallback every teardown fails and every later setup
  trips over the bucket it left. On NotImplemented the listing is done with
  ListObjectsV2 instead (no version ids: R2 keeps one version per key).
* tristore, like R2's documented rule, will not delete a bucket that still has
  multipart uploads in progress; a test that leaves one open would make every later
  setup fail, so uploads are aborted before the bucket is deleted.
"""
from botocore.exceptions import ClientError

counts = {"listed without versions": 0, "uploads aborted": 0}


def _code(error):
    return error.response.get("Error", {}).get("Code")


def _pages_without_versions(client, bucket, batch_size):
    params = {"Bucket": bucket, "MaxKeys": batch_size}
    while True:
        page = client.list_objects_v2(**params)
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            yield keys
        if not page.get("IsTruncated"):
            return
        params["ContinuationToken"] = page["NextContinuationToken"]


def _abort_uploads(client, bucket):
    params = {"Bucket": bucket}
    while True:
        try:
            page = client.list_multipart_uploads(**params)
        except ClientError:
            # The bucket is gone already; s3-tests' own cleanup copes with that.
            return
        for upload in page.get("Uploads", []):
            client.abort_multipart_upload(
                Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
            counts["uploads aborted"] += 1
        if not page.get("IsTruncated"):
            return
        params["KeyMarker"] = page["NextKeyMarker"]
        params["UploadIdMarker"] = page["NextUploadIdMarker"]


def pytest_configure(config):
    import s3tests.functional as functional

    versioned_listing = functional.list_versions
    nuke_bucket = functional.nuke_bucket

    def list_versions(client, bucket, batch_size):
        try:
            client.list_object_versions(Bucket=bucket, MaxKeys=1)
        except ClientError as e:
            if _code(e) != "NotImplemented":
                raise
            counts["listed without versions"] += 1
            yield from _pages_without_versions(client, bucket, batch_size)
            return
        yield from versioned_listing(client, bucket, batch_size)

    def nuke_with_uploads(client, bucket):
        _abort_uploads(client, bucket)
        return nuke_bucket(client, bucket)

    functional.list_versions = list_versions
    functional.nuke_bucket = nuke_with_uploads


def pytest_terminal_summary(terminalreporter):
    done = ", ".join(f"{what}: {n}" for what, n in counts.items())
    terminalreporter.write_line(f"tristore cleanup: {done}")
