"""OAuth client credentials for the benchmark (SMART Backend Services, ES384).

  oauth.py keygen DIR            writes DIR/bench.key.pem and DIR/bench.jwks.json
  oauth.py token DIR BASE_URL    prints a bearer token from BASE_URL/oauth/token
"""
import json
import sys
import time
import urllib.parse
import urllib.request
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def keygen(d):
    key = ec.generate_private_key(ec.SECP384R1())
    with open(f"{d}/bench.key.pem", "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "alg": "ES384", "use": "sig"})
    with open(f"{d}/bench.jwks.json", "w") as f:
        json.dump({"keys": [jwk]}, f)


def token(d, base):
    with open(f"{d}/bench.key.pem", "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    url = f"{base}/oauth/token"
    now = int(time.time())
    assertion = jwt.encode({"iss": "bench", "sub": "bench", "aud": url, "exp": now + 240,
                            "jti": str(uuid.uuid4())}, key, algorithm="ES384", headers={"kid": "k1"})
    body = urllib.parse.urlencode({
        "grant_type": "client_credentials", "scope": "system/*.crs",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion}).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=body)) as r:
        print(json.load(r)["access_token"])


if __name__ == "__main__":
    {"keygen": lambda: keygen(sys.argv[2]), "token": lambda: token(sys.argv[2], sys.argv[3])}[sys.argv[1]]()
