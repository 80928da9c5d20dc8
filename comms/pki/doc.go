// Package pki owns the X.509 identities that speak MQTT in a KeyStone
// fleet: a small certificate authority kept in a folder (its key and
// self-signed certificate), and the certificates it issues — a device's
// client certificate (common name = device id, client authentication), the
// fleet controller's client certificate, and the broker's server
// certificate (server authentication, with its DNS names and IP
// addresses). It also makes and checks certificate signing requests, so a
// device key can be made on the device and never leave it.
//
// Every key it makes is ECDSA P-256, which every MQTT broker and TLS
// library in use takes (OpenSSL-based mosquitto, EMQX, AWS IoT); the CA is
// name-constrained to the broker names it was made for, so a copy of its
// certificate trusted by mistake for other purposes cannot vouch for any
// other host.
//
// The package writes only the files it is asked to write and never
// replaces one. It does not know where a device keeps its files (see
// agent/provision), does not revoke certificates (no CRL is kept), and
// never touches the network.
package pki
