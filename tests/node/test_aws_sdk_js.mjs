// The AWS SDK for JavaScript v3 with default settings against tristore's S3 port.
// It streams bodies as aws-chunked STREAMING-UNSIGNED-PAYLOAD-TRAILER with a CRC32
// trailer even over plain http, the framing most servers got wrong in 2025.
// usage: node test_aws_sdk_js.mjs http://127.0.0.1:<s3 port>   (run by tests/node_clients.rs)
import { createRequire } from "node:module";
import { Readable } from "node:stream";
import assert from "node:assert/strict";

const require = createRequire(process.env.NODE_CLIENTS + "/");
const { S3Client, CreateBucketCommand, PutObjectCommand, GetObjectCommand, UploadPartCommand,
  CreateMultipartUploadCommand, CompleteMultipartUploadCommand, HeadObjectCommand } = require("@aws-sdk/client-s3");
const { getSignedUrl } = require("@aws-sdk/s3-request-presigner");

const s3 = new S3Client({
  endpoint: process.argv[2], region: "auto", forcePathStyle: true,
  credentials: { accessKeyId: "tristore", secretAccessKey: "tristore-secret" },
});
const text = async (body) => Buffer.from(await body.transformToByteArray()).toString();

await s3.send(new CreateBucketCommand({ Bucket: "js-sdk" }));
// A stream of known length: sent aws-chunked with an unsigned CRC32 trailer.
const data = Buffer.alloc(300_000, "x");
const put = await s3.send(new PutObjectCommand({
  Bucket: "js-sdk", Key: "stream.txt", Body: Readable.from([data.subarray(0, 100_000), data.subarray(100_000)]),
  ContentLength: data.length, ContentType: "text/plain",
}));
// CRC-32 (IEEE) of 300,000 "x", big-endian, base64 (Python's zlib.crc32 gives it).
assert.equal(put.ChecksumCRC32, "s8gqzQ==", "the body's CRC32 is echoed");
const got = await s3.send(new GetObjectCommand({ Bucket: "js-sdk", Key: "stream.txt" }));
assert.equal(await text(got.Body), data.toString());
assert.equal(got.ContentType, "text/plain");

await s3.send(new PutObjectCommand({ Bucket: "js-sdk", Key: "small.txt", Body: "hello js" }));
// The SDK signs the text; Node sends it as ISO-8859-1 bytes (botocore sends UTF-8).
await s3.send(new PutObjectCommand({ Bucket: "js-sdk", Key: "café.txt", Body: "x", Metadata: { note: "café" } }));
assert.equal((await s3.send(new HeadObjectCommand({ Bucket: "js-sdk", Key: "café.txt" }))).Metadata.note, "café");
assert.equal(await text((await s3.send(new GetObjectCommand({ Bucket: "js-sdk", Key: "small.txt" }))).Body), "hello js");

const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: "js-sdk", Key: "parts.bin" }));
const part = await s3.send(new UploadPartCommand({ Bucket: "js-sdk", Key: "parts.bin", UploadId, PartNumber: 1, Body: "only part" }));
await s3.send(new CompleteMultipartUploadCommand({
  Bucket: "js-sdk", Key: "parts.bin", UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] },
}));
assert.equal((await s3.send(new HeadObjectCommand({ Bucket: "js-sdk", Key: "parts.bin" }))).ContentLength, 9);

const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: "js-sdk", Key: "small.txt" }), { expiresIn: 60 });
assert.equal(await (await fetch(url)).text(), "hello js");
const putUrl = await getSignedUrl(s3, new PutObjectCommand({ Bucket: "js-sdk", Key: "signed.txt" }), { expiresIn: 60 });
assert.equal((await fetch(putUrl, { method: "PUT", body: "via url" })).status, 200);
assert.equal(await text((await s3.send(new GetObjectCommand({ Bucket: "js-sdk", Key: "signed.txt" }))).Body), "via url");
console.log("OK");
