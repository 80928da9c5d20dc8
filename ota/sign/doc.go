// Package sign owns KeyStone's ed25519 keys and signatures: key files,
// detached signatures over the exact bytes of a recipe (`<file>.sig`), a
// Keyring of trusted public keys and signatures over
// canonical JSON job documents.
//
// It reads and writes only key and signature files. It never parses recipes
// or manifests, never fetches anything from the network and knows nothing of
// TUF; callers decide what must be signed and what to do when a check fails.
//
// # Files
//
// A private key is a PEM block "PRIVATE KEY" holding PKCS#8 DER, written
// with mode 0600; LoadPrivateKey refuses a key file that group or others may
// access (ErrInsecureKeyFile). A public key is a PEM block "PUBLIC KEY"
// holding PKIX DER. A detached signature `<file>.sig` is the standard base64
// encoding of the 64-byte ed25519 signature of the file's exact bytes, on one
// line ending in a newline; surrounding white space is ignored when it is read.
//
// # Key IDs
//
// KeyID names a public key by the first 16 hex characters of the SHA-256 of
// its 32 raw bytes. It is a label for finding a key, never a substitute for
// verifying with it.
//
// # Canonical JSON
//
// A job document is signed over its canonical JSON without its top-level
// "signature" member. The canonical form is obtained by decoding the
// document (which must be a JSON object) with numbers kept as written
// (json.Decoder.UseNumber), deleting the top-level "signature" key and
// encoding the result again with encoding/json: object keys sorted
// byte-wise at every level, no insignificant white space, no HTML escaping,
// numbers byte-for-byte as they appeared in the input, strings re-escaped the
// way encoding/json escapes them. Two documents that differ only in key
// order, white space or the "signature" member therefore have the same
// canonical form and the same signature. A document with a duplicated key, or
// nested deeper than 64 levels, is refused, so the signed object and the
// object acted upon are always the same.
package sign
