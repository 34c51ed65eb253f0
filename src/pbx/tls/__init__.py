"""TLS for every surface of the PBX: one certificate and key, from Traefik, certbot or made here.

Asterisk's SIP TLS transport, its HTTPS server and DTLS read the same two files (`paths.CERT_FILE`,
`paths.KEY_FILE`). `pbx init` fills them before Asterisk starts; the `tls` service keeps them current.
"""
