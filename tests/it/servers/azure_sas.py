"""Azure Blob shared-access signatures for azurite's well-known development account.

Used by the tests' GitHub Actions cache service (gha_cache.py) to hand out signed upload and
download URLs, as GitHub's service does for Azure Blob, and on its own to create a container:

    python3 azure_sas.py create-container http://127.0.0.1:PORT CONTAINER
"""

import base64
import hashlib
import hmac
import sys
import urllib.parse
import urllib.request

# Azurite's documented development account: public test credentials, not a secret.
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
SAS_VERSION = "2019-12-12"


def account_sas():
    """An account SAS for the blob service: every permission (in the canonical order azurite re-derives), services, containers, objects."""
    fields = {
        "sp": "rwdlac",
        "ss": "b",
        "srt": "sco",
        "se": "2099-01-01T00:00:00Z",
        "sv": SAS_VERSION,
    }
    # The 2019-12-12 account SAS string to sign: account, permissions, services, resource
    # types, start, expiry, IP, protocol, version, each followed by a newline.
    to_sign = "\n".join(
        [ACCOUNT, fields["sp"], fields["ss"], fields["srt"], "", fields["se"], "", "", fields["sv"], ""]
    )
    mac = hmac.new(base64.b64decode(KEY), to_sign.encode(), hashlib.sha256).digest()
    fields["sig"] = base64.b64encode(mac).decode()
    return urllib.parse.urlencode(fields)


def create_container(endpoint, container):
    url = f"{endpoint.rstrip('/')}/{ACCOUNT}/{container}?restype=container&{account_sas()}"
    req = urllib.request.Request(url, method="PUT", data=b"")
    req.add_header("x-ms-version", SAS_VERSION)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        # 409: it exists already, which is what was asked for.
        if e.code == 409:
            return e.code
        raise


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "create-container":
        print(create_container(sys.argv[2], sys.argv[3]))
    else:
        sys.exit("usage: azure_sas.py create-container ENDPOINT CONTAINER")
