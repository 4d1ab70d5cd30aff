#!/usr/bin/env bash
# Instructions per non-streamed Chat Completions request for the whole mitmdump process, counted by
# callgrind (docs/benchmark.md, "how far each step got"). Unlike wall-clock time on a shared VM, the
# count repeats within about 1 %. Needs valgrind (Debian: apt-get install valgrind).
#   scripts/instructions_per_request.sh [REQUESTS]    (default 200, after 50 to warm up, 4 in flight)
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
YAML
CODEX_PROXY_DATA_DIR=$WORK valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/cg.%p" \
  $PY .venv/bin/mitmdump -s addons/codex.py --listen-host 127.0.0.1 -p "$PORT" --set confdir="$WORK/conf" > "$WORK/proxy.log" 2>&1 &
PROXY=$!
$PY - "$PORT" "$N" "$PROXY" <<'PY'
import concurrent.futures, subprocess, sys, time
import httpx
from codex_fake import mint_access_token

port, n, proxy = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
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
body = {"model": "gpt-5.4", "messages": [{"role": "user", "content": "hi"}]}


def requests(count: int) -> None:
    with httpx.Client(timeout=120) as client:
        for _ in range(count):
            client.post(base + "/v1/chat/completions", headers=auth, json=body).raise_for_status()


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
