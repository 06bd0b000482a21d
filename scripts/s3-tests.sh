#!/usr/bin/env bash
# Runs ceph/s3-tests against a fresh `tristore serve --ephemeral` (release build) and
# prints pytest's summary; the JUnit report is left in target/s3-tests/results.xml.
#
#   scripts/s3-tests.sh [pytest arguments...]
#
# Without arguments it runs the tests listed in scripts/s3-tests.r2.txt (those of what R2
# offers); arguments replace that list, e.g. `scripts/s3-tests.sh -k cors`.
#
# Environment:
#   S3TESTS_GIT  where to clone s3-tests from: a URL or a local (bare) clone
#                (default https://github.com/ceph/s3-tests.git)
#   S3TESTS_REF  the commit to test with (default: the one the list was made against)
#   PYTHON       the interpreter the virtualenv is made with (default python3)
#
# Everything it fetches goes under target/s3-tests/: the s3-tests tree, a virtualenv with
# s3-tests' requirements (from PyPI), the configuration and the server's log. This is a
# tool for people; CI does not run it (it needs the network and takes minutes).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$ROOT/target/s3-tests
GIT=${S3TESTS_GIT:-https://github.com/ceph/s3-tests.git}
REF=${S3TESTS_REF:-8f0ae7b404a3a2fcf7038bf1e6bf29544fe9b6a3}
KEY=s3tests-key
SECRET=s3tests-secret
mkdir -p "$WORK"

# s3-tests at a fixed commit, so that runs on different days compare.
if ! git -C "$WORK/src" cat-file -e "$REF^{commit}" 2>/dev/null; then
    rm -rf "$WORK/src"
    git clone --quiet --no-checkout "$GIT" "$WORK/src"
fi
git -C "$WORK/src" -c advice.detachedHead=false checkout --quiet --force "$REF"

if [ ! -x "$WORK/venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$WORK/venv"
fi
# pip skips what is installed already; -q keeps the run's output to the tests.
"$WORK/venv/bin/python" -m pip install -q -r "$WORK/src/requirements.txt" pytest-timeout

(cd "$ROOT" && cargo build --release --quiet)

free_port() {
    "$WORK/venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PORT=$(free_port)
# No buckets provisioned: some tests count the buckets there are.
printf 'name = "s3-tests"\n' > "$WORK/wrangler.toml"
"$ROOT/target/release/tristore" serve --ephemeral --config "$WORK/wrangler.toml" \
    --port 0 --s3-port "$PORT" --s3-access-key-id "$KEY" --s3-secret-access-key "$SECRET" \
    > "$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
    kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
    sleep 0.1
done

# One key pair for every user s3-tests knows: tristore, like an R2 token, has one. Region
# `auto` is R2's, also as the LocationConstraint s3-tests sends (`api_name`).
user() {
    printf '[%s]\ndisplay_name = %s\nuser_id = %s\nemail = %s@example.com\n' "$1" "$2" "$2" "$2"
    printf 'access_key = %s\nsecret_key = %s\n%s\n\n' "$KEY" "$SECRET" "${3:-}"
}
{
    printf '[DEFAULT]\nhost = 127.0.0.1\nport = %s\nis_secure = False\nssl_verify = False\n\n' "$PORT"
    printf '[fixtures]\nbucket prefix = s3t-{random}-\n\n'
    user "s3 main" main "api_name = auto"
    user "s3 alt" alt
    user "s3 tenant" tenant "tenant = testx"
    user "iam" iam
    user "iam root" iamroot
    user "iam alt root" iamaltroot
} > "$WORK/s3tests.conf"

if [ $# -eq 0 ]; then
    grep -v -e '^#' -e '^$' "$ROOT/scripts/s3-tests.r2.txt" \
        | sed 's|^|s3tests/functional/test_s3.py::|' > "$WORK/selection.txt"
    set -- "@$WORK/selection.txt"
fi

echo "s3-tests $(git -C "$WORK/src" rev-parse --short HEAD) against tristore $(git -C "$ROOT" rev-parse --short HEAD) on 127.0.0.1:$PORT"
cd "$WORK/src"
export S3TEST_CONF=$WORK/s3tests.conf AWS_DEFAULT_REGION=auto \
    AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    PYTHONPATH=$ROOT/scripts${PYTHONPATH:+:$PYTHONPATH}
status=0
"$WORK/venv/bin/python" -m pytest -q -p no:cacheprovider -o addopts= -p s3_tests_r2 \
    --timeout=120 --tb=short -rfE --junitxml="$WORK/results.xml" "$@" || status=$?
exit "$status"
