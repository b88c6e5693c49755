"""The fixtures the sandbox loads without ``--fixtures``: the text of ``examples/sandbox.toml``
(kept equal to it by tests/sandbox/test_fixtures.py), here so that an installed package has it."""

DEFAULT_FIXTURES = """\
# tessera sandbox fixtures: fixed credentials a test suite can hard-code.
#
#   tessera sandbox --fixtures examples/sandbox.toml
#   pytest --tessera-fixtures examples/sandbox.toml      (the pytest plugin)
#
# Without --fixtures the sandbox loads this very file (tessera.sandbox.defaults).
# Sandbox values only: a fixed secret is refused in a production home.

# Nexi SoftPOS: an app with its developer certificate. Give `csr = "app.csr"` (the
# certificate is signed from it) or `key = "app.key"` (a CSR is made from that key), paths
# relative to this file; with neither, a key is generated. The certificate (and a generated
# key) are written to <home>/apps/<client_id>.crt and .key; the sandbox prints both paths.
[[nexi.apps]]
client_id = "softpos-demo-app"
client_secret = "sandbox-nexi-secret-0123456789"
name = "SoftPOS demo app"
redirect_uris = ["https://softpos.example.test/callback"]

# MobilePay PoS: an integrator client (HTTP Basic). A token with merchant_vat needs the
# merchant's grant (see merchants below).
[[mobilepay.clients]]
client_id = "mobilepay-integrator"
client_secret = "sandbox-mobilepay-secret-0123456789"
name = "Demo POS integrator"

# B2BINPAY: an API user (login/password).
[[b2binpay.users]]
login = "b2binpay-api-user"
password = "sandbox-b2binpay-password-0123456789"

# Merchants: points of sale and terminals (Nexi's pointOfSale and terminal_ids), users
# (who sign in on the Nexi enrollment page), axept keys, and grants to apps (MobilePay).
[[merchants]]
id = 1001
name = "Demo Shop"
vat = "DK12345678"
grants = ["mobilepay-integrator", "softpos-demo-app"]

[[merchants.points_of_sale]]
id = "POS-1001"
terminals = [{ tid = "SP100101", kind = "softpos" }, { tid = "MP100101", kind = "mpos" }]

[[merchants.users]]
username = "owner@demo-shop.example"
password = "correct horse battery"

[[merchants.axept_keys]]
key_id = 1
key = "sandbox-axept-key-1001-0123456789"

# A merchant that granted nobody: MobilePay refuses a token for its VAT number.
[[merchants]]
id = 1002
name = "Other Shop"
vat = "FI87654321"
"""
