#!/bin/sh
# Seeds fuzz/corpus/convert with the two recorded Key Vault secrets and a few openssl-made
# values (first byte: 0 = PKCS#12 DER, 1 = PEM text; see fuzz_targets/convert.rs).
# Usage: fuzz/seed.sh [path/to/shared/conformance/recorded]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
recorded=${1:-$here/../../shared/conformance/recorded}
out=$here/corpus/convert
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in pkcs12 pem; do
  python3 - "$recorded/$f-secret.recording.json" "$out/recorded-$f" "$f" <<'PY'
import base64, json, sys
body = json.load(open(sys.argv[1]))["Entries"][8]["ResponseBody"]["value"]
raw = b"\0" + base64.b64decode(body) if sys.argv[3] == "pkcs12" else b"\1" + body.encode()
open(sys.argv[2], "wb").write(raw)
PY
done
cd "$tmp"
printf 'basicConstraints=critical,CA:true\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' > ca.ext
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout root.key -out root.pem -subj /CN=root -days 30 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout int.key -out int.csr -subj /CN=int 2>/dev/null
openssl x509 -req -in int.csr -CA root.pem -CAkey root.key -set_serial 2 -out int.pem -days 30 -extfile ca.ext 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr -subj /CN=leaf 2>/dev/null
openssl x509 -req -in leaf.csr -CA int.pem -CAkey int.key -set_serial 3 -out leaf.pem -days 30 2>/dev/null
cat root.pem int.pem > ca.pem
openssl pkcs12 -export -inkey leaf.key -in leaf.pem -certfile ca.pem -passout pass: -out aes.p12
openssl pkcs12 -export -legacy -inkey leaf.key -in leaf.pem -certfile ca.pem -passout pass: -out legacy.p12
openssl pkey -in int.key -traditional -out int.sec1
{ printf '\000'; cat aes.p12; } > "$out/aes-p12"
{ printf '\000'; cat legacy.p12; } > "$out/legacy-p12"
{ printf '\001'; cat leaf.key root.pem leaf.pem int.pem; } > "$out/pem-chain"
{ printf '\001'; cat int.sec1 int.pem; } > "$out/pem-sec1"
ls "$out" | wc -l
