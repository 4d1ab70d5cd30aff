#!/usr/bin/env bash
# Instructions per non-streamed Chat Completions request for the whole mitmdump process, counted by
# callgrind (docs/benchmark.md, "how far each step got"). Unlike wall-clock time on a shared VM, the
# count repeats within about 1 %. Needs valgrind (Debian: apt-get install valgrind).
#   scripts/instructions_per_request.sh [REQUESTS]    (default 200, after 50 to warm up, 4 in flight)
# Environment, for streamed calls (docs/benchmark.md, "Where a stream's CPU goes"):
#   STREAM=1 (read a streamed answer), EVENTS=N text deltas per answer (default 5), DELAY_MS between
#   them (default 0), NEW_CONNECTIONS=1 (a new client connection per call), TRANSPORT=sse|websocket
#   (upstream.transport; default auto).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200}
PY=.venv/bin/python
WORK=$(mktemp -d)
trap 'kill $PROXY $FAKE 2>/dev/null || true; rm -rf "$WORK"' EXIT
FAKE_PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$PY -m codex_fake --port "$FAKE_PORT" > "$WORK/fake.log" 2>&1 &
FAKE=$!
cat > "$WORK/local.yaml" <<YAML
server: {proxy_api_key: bench-key}
api: {base_url: "http://127.0.0.1:$FAKE_PORT/backend-api"}
auth: {oauth_issuer: "http://127.0.0.1:$FAKE_PORT"}
client: {version_feed_url: null}  # never ask the real release feed
upstream: {transport: ${TRANSPORT:-auto}}
YAML
CODEX_PROXY_DATA_DIR=$WORK valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/cg.%p" \
  $PY .venv/bin/mitmdump -s addons/codex.py --listen-host 127.0.0.1 -p "$PORT" --set confdir="$WORK/conf" > "$WORK/proxy.log" 2>&1 &
PROXY=$!
STREAM=${STREAM:-0} EVENTS=${EVENTS:-5} DELAY_MS=${DELAY_MS:-0} NEW_CONNECTIONS=${NEW_CONNECTIONS:-0} FAKE_PORT=$FAKE_PORT \
$PY - "$PORT" "$N" "$PROXY" <<'PY'
import concurrent.futures, http.client, json, os, subprocess, sys, time
import httpx
from codex_fake import mint_access_token

port, n, proxy = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
stream, fresh = os.environ["STREAM"] == "1", os.environ["NEW_CONNECTIONS"] == "1"
base, auth = f"http://127.0.0.1:{port}", {"Authorization": "Bearer bench-key"}
for _ in range(600):  # valgrind starts the proxy slowly
    try:
        if httpx.get(base + "/health", timeout=2).status_code == 200:
            break
    except httpx.HTTPError:
        pass
    time.sleep(0.5)
httpx.post(base + "/auth/accounts", headers=auth, json={"token": mint_access_token(account_id="a1", expires_in=86400)},
           timeout=120).raise_for_status()
if stream:  # the fake's answer: EVENTS text deltas, DELAY_MS apart
    httpx.post(f"http://127.0.0.1:{os.environ['FAKE_PORT']}/__fake/config",
               json={"events": int(os.environ["EVENTS"]), "event_delay_ms": float(os.environ["DELAY_MS"])}).raise_for_status()
body = json.dumps({"model": "gpt-5.4", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
headers = {**auth, "Content-Type": "application/json"}


def requests(count: int) -> None:
    conn = None
    for _ in range(count):
        if conn is None or fresh:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.request("POST", "/v1/chat/completions", body, headers)
        response = conn.getresponse()
        answer = response.read()
        assert response.status == 200 and (not stream or b"[DONE]" in answer), answer[:300]
        if fresh:
            conn.close()


requests(50)  # warm-up, not counted
subprocess.run(["callgrind_control", "-i", "on", proxy], check=True, capture_output=True)
with concurrent.futures.ThreadPoolExecutor(4) as pool:
    list(pool.map(requests, [n // 4] * 4))
subprocess.run(["callgrind_control", "-i", "off", proxy], check=True, capture_output=True)
PY
callgrind_control -d "$PROXY" > /dev/null 2>&1
sleep 1
TOTAL=$(grep -h "^summary:\|^totals:" "$WORK"/cg.* | awk '{s += $2} END {printf "%d", s}')
echo "instructions per request: $((TOTAL / (N / 4 * 4)))"
