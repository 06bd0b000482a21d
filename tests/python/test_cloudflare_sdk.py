"""The official Cloudflare Python SDK against a running tristore emulator.

usage: python test_cloudflare_sdk.py BASE_URL   (BASE_URL ends in /client/v4)
Run by tests/python_clients.rs, which starts the server and installs the SDK.
"""
import json
import sys
import unittest
import uuid

import cloudflare

BASE_URL = sys.argv.pop(1)
ACCOUNT = "0123456789abcdef0123456789abcdef"
client = cloudflare.Cloudflare(api_token="test-token", base_url=BASE_URL, max_retries=0)


class D1(unittest.TestCase):
    def setUp(self):
        self.name = "sdk-" + uuid.uuid4().hex[:8]
        self.db = client.d1.database.create(account_id=ACCOUNT, name=self.name)

    def tearDown(self):
        client.d1.database.delete(self.db.uuid, account_id=ACCOUNT)

    def query(self, sql, params=None):
        kwargs = {"sql": sql} if params is None else {"sql": sql, "params": params}
        return list(client.d1.database.query(self.db.uuid, account_id=ACCOUNT, **kwargs))

    def test_create_list_get(self):
        self.assertEqual(self.db.name, self.name)
        names = [d.name for d in client.d1.database.list(account_id=ACCOUNT)]
        self.assertIn(self.name, names)
        got = client.d1.database.get(self.db.uuid, account_id=ACCOUNT)
        self.assertEqual(got.uuid, self.db.uuid)

    def test_query_with_params_and_scripts(self):
        results = self.query("CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER); INSERT INTO t VALUES ('a', 1)")
        self.assertEqual(len(results), 2)
        self.assertEqual(results[1].meta.changes, 1)
        self.query("INSERT INTO t VALUES (?, ?)", ["b", "2"])
        rows = self.query("SELECT * FROM t WHERE id = ?", ["b"])[0].results
        self.assertEqual(rows, [{"id": "b", "n": 2}])

    def test_batch_and_raw(self):
        self.query("CREATE TABLE t (x)")
        page = client.d1.database.query(
            self.db.uuid,
            account_id=ACCOUNT,
            batch=[{"sql": "INSERT INTO t VALUES (?)", "params": ["1"]}, {"sql": "SELECT count(*) AS c FROM t"}],
        )
        results = list(page)
        self.assertEqual(results[1].results, [{"c": 1}])
        raw = list(client.d1.database.raw(self.db.uuid, account_id=ACCOUNT, sql="SELECT x, 2 AS y FROM t"))
        self.assertEqual(raw[0].results.columns, ["x", "y"])
        self.assertEqual(raw[0].results.rows, [["1", 2]])

    def test_sql_errors_are_7500(self):
        with self.assertRaises(cloudflare.BadRequestError) as caught:
            self.query("SELECT * FROM missing")
        body = caught.exception.body
        self.assertEqual(caught.exception.status_code, 400)
        self.assertIn("no such table: missing", json.dumps(body))
        self.assertIn("7500", json.dumps(body))


class Vectorize(unittest.TestCase):
    def setUp(self):
        self.name = "sdk-" + uuid.uuid4().hex[:8]
        client.vectorize.indexes.create(
            account_id=ACCOUNT, name=self.name, config={"dimensions": 3, "metric": "cosine"}
        )
        client.vectorize.indexes.metadata_index.create(
            self.name, account_id=ACCOUNT, property_name="genre", index_type="string"
        )
        lines = [
            {"id": "a", "values": [1, 0, 0], "metadata": {"genre": "x"}},
            {"id": "b", "values": [0.9, 0.1, 0], "metadata": {"genre": "y"}, "namespace": "ns1"},
            {"id": "c", "values": [0, 1, 0], "metadata": {"genre": "x"}, "namespace": "ns1"},
        ]
        body = "\n".join(json.dumps(l) for l in lines).encode()
        self.mutation = client.vectorize.indexes.insert(self.name, account_id=ACCOUNT, body=body)

    def tearDown(self):
        client.vectorize.indexes.delete(self.name, account_id=ACCOUNT)

    def test_insert_info_and_list(self):
        info = client.vectorize.indexes.info(self.name, account_id=ACCOUNT)
        self.assertEqual(info.vector_count, 3)
        self.assertEqual(info.dimensions, 3)
        self.assertEqual(info.processed_up_to_mutation, self.mutation.mutation_id)
        names = [i.name for i in client.vectorize.indexes.list(account_id=ACCOUNT)]
        self.assertIn(self.name, names)
        listed = client.vectorize.indexes.list_vectors(self.name, account_id=ACCOUNT, count=2)
        self.assertEqual([v.id for v in listed.vectors], ["a", "b"])
        self.assertTrue(listed.is_truncated)

    def test_query_with_filter_and_namespace(self):
        res = client.vectorize.indexes.query(
            self.name, account_id=ACCOUNT, vector=[1, 0, 0], top_k=3, return_metadata="all", filter={"genre": "x"}
        )
        self.assertEqual([m.id for m in res.matches], ["a", "c"])
        self.assertAlmostEqual(res.matches[0].score, 1.0, places=5)
        self.assertEqual(res.matches[0].metadata, {"genre": "x"})
        res = client.vectorize.indexes.query(
            self.name, account_id=ACCOUNT, vector=[1, 0, 0], top_k=3, extra_body={"namespace": "ns1"}
        )
        self.assertEqual([m.id for m in res.matches], ["b", "c"])

    def test_get_and_delete_by_ids(self):
        got = client.vectorize.indexes.get_by_ids(self.name, account_id=ACCOUNT, ids=["b", "zz"])
        got = [g if isinstance(g, dict) else g.to_dict() for g in got]
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0]["namespace"], "ns1")
        self.assertAlmostEqual(got[0]["values"][0], 0.9, places=6)
        client.vectorize.indexes.delete_by_ids(self.name, account_id=ACCOUNT, ids=["b"])
        info = client.vectorize.indexes.info(self.name, account_id=ACCOUNT)
        self.assertEqual(info.vector_count, 2)

    def test_errors_carry_vectorize_codes(self):
        with self.assertRaises(cloudflare.BadRequestError) as caught:
            client.vectorize.indexes.query(self.name, account_id=ACCOUNT, vector=[1, 0])
        self.assertIn("40006", json.dumps(caught.exception.body))
        with self.assertRaises(cloudflare.BadRequestError) as caught:
            client.vectorize.indexes.insert(self.name, account_id=ACCOUNT, body=b"not json\n")
        self.assertIn("40026", json.dumps(caught.exception.body))

    def test_metacogna_index_is_provisioned(self):
        info = client.vectorize.indexes.info("metacogna-index", account_id=ACCOUNT)
        self.assertEqual(info.dimensions, 768)
        props = client.vectorize.indexes.metadata_index.list("metacogna-index", account_id=ACCOUNT)
        self.assertEqual(sorted(p.property_name for p in props.metadata_indexes), ["chunkIndex", "docId"])


class R2Buckets(unittest.TestCase):
    def test_create_list_delete(self):
        name = "sdk-" + uuid.uuid4().hex[:8]
        client.r2.buckets.create(account_id=ACCOUNT, name=name)
        listed = client.r2.buckets.list(account_id=ACCOUNT)
        self.assertIn(name, [b.name for b in listed.buckets])
        self.assertIn("metacogna-vault", [b.name for b in listed.buckets])
        client.r2.buckets.delete(name, account_id=ACCOUNT)
        listed = client.r2.buckets.list(account_id=ACCOUNT)
        self.assertNotIn(name, [b.name for b in listed.buckets])


class Auth(unittest.TestCase):
    def test_unknown_routes_get_the_envelope(self):
        import urllib.error
        import urllib.request

        try:
            urllib.request.urlopen(BASE_URL + "/accounts/x/nothing")
            self.fail("expected 404")
        except urllib.error.HTTPError as e:
            body = json.loads(e.read())
            self.assertEqual(e.code, 404)
            self.assertFalse(body["success"])
            self.assertEqual(body["errors"][0]["code"], 7003)


if __name__ == "__main__":
    unittest.main(verbosity=2)
