"""Loads the benchmark's transaction Bundles into the peer FHIR server, a few at a time."""
import glob
import json
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

base, folder = sys.argv[1], sys.argv[2]


def post(path):
    with open(path, "rb") as f:
        body = f.read()
    req = urllib.request.Request(base, data=body, headers={"content-type": "application/fhir+json"})
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return f"{e.code} {e.read()[:300]!r}"


files = sorted(glob.glob(f"{folder}/bundle-*.json"))
first = post(files[0])
if first != 200:
    sys.exit(f"the peer refused the first bundle: {first}")
with ThreadPoolExecutor(2) as pool:
    bad = [s for s in pool.map(post, files[1:]) if s != 200]
if bad:
    sys.exit(f"{len(bad)} bundles refused, e.g. {bad[0]}")
print(f"loaded {len(files)} bundles")
