"""The developer certificate authority: client certificates for mutual TLS.

* :mod:`tessera.ca.csr` decides which CSRs may be signed;
* :mod:`tessera.ca.authority` holds the CA key and issues certificates;
* :mod:`tessera.ca.formats` encodes certificates (PEM, PKCS#7, RFC 8705 thumbprint).
"""

from .authority import CertificateAuthority, IssuedCertificate
from .csr import CSRRejected, check_csr
from .formats import cert_to_pem, serial_hex, to_pkcs7_pem, x5t_s256

__all__ = [
    "CSRRejected",
    "CertificateAuthority",
    "IssuedCertificate",
    "cert_to_pem",
    "check_csr",
    "serial_hex",
    "to_pkcs7_pem",
    "x5t_s256",
]
