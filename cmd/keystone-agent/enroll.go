package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/keystone-edge/keystone/agent/provision"
)

const enrollUsage = `Usage:
  keystone-agent enroll --device-id ID [--key FILE] [--out FILE]

Make this device's key, if it has none, and print a certificate signing
request for it: the key never leaves the device. The CA signs the request
(keystonectl ca issue DIR --device-id ID --csr FILE), and the certificate
comes back to the device (keystonectl device provision --root / --cert
ID.pem --key FILE ...).

The key is ECDSA P-256, written to FILE (default /etc/keystone/device.key)
with mode 0600, owned by the keystone user and group when they exist. An
existing key is kept and a request made for it: enrolling again renews the
certificate without a new key.

Options:
  --device-id ID  the device's id: the request's common name (required)
  --key FILE      the device key (default /etc/keystone/device.key)
  --out FILE      write the request to FILE instead of stdout

Exit codes:
  0  the request was written
  1  the key could not be made or read, or the request not written
  2  usage error
`

// enrollCmd runs "keystone-agent enroll".
func enrollCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keystone-agent enroll", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	id := fs.String("device-id", "", "")
	key := fs.String("key", provision.KeyFile, "")
	out := fs.String("out", "", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, enrollUsage)
			return exitOK
		}
		fmt.Fprintf(stderr, "keystone-agent enroll: %v\ntry: keystone-agent enroll --help\n", err)
		return exitUsage
	}
	if fs.NArg() > 0 || *id == "" {
		fmt.Fprint(stderr, "keystone-agent enroll: --device-id ID is required (and no argument)\ntry: keystone-agent enroll --help\n")
		return exitUsage
	}
	res, err := provision.Enroll("/", *key, *id)
	if err != nil {
		fmt.Fprintf(stderr, "keystone-agent: %v\n", err)
		return exitError
	}
	what := "kept the existing key"
	if res.Created {
		what = "made a new key"
	}
	fmt.Fprintf(stderr, "keystone-agent enroll: %s %s", what, res.KeyFile)
	if res.Owner != "" {
		fmt.Fprintf(stderr, " (owner %s)", res.Owner)
	}
	fmt.Fprintln(stderr)
	if *out == "" {
		_, err = stdout.Write(res.CSR)
	} else {
		err = os.WriteFile(*out, res.CSR, 0o644)
	}
	if err != nil {
		fmt.Fprintf(stderr, "keystone-agent enroll: write the request: %v\n", err)
		return exitError
	}
	return exitOK
}
