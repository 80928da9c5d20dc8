// Package provision puts a device's identity and trust into a root
// folder: a live system ("/") or an image's root folder before it is
// flashed. It owns the device's layout under /etc/keystone (agent.toml,
// the device key and certificate, the broker's CA, the trusted ops keys,
// the component repository's TUF root) and /var/lib/keystone, who owns
// each file (the keystone account as the root folder's own etc/passwd and
// etc/group name it, never the host's), and the on-device half of
// enrollment: a key made on the device and a signing request for it.
//
// It checks everything it writes before writing anything: the
// configuration passes the agent's own validation, the certificate belongs
// to the key, the TUF root is signed by its own keys. It does not issue
// certificates (comms/pki does), never follows a symbolic link out of the
// root folder, never replaces an identity unless told to, and does not
// touch the network.
package provision
