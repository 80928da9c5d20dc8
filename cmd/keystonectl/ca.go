package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keystone-edge/keystone/comms/pki"
)

func newCACmd(opts *options) *cobra.Command {
	cmd := newGroupCmd("ca", "A small certificate authority for device, controller and broker certificates",
		`Keep a small certificate authority in a folder, for fleets without a PKI of
their own, and issue the certificates MQTT needs: each device's client
certificate (common name = device id), the fleet controller's, and the
broker's server certificate. Any other CA works as well (step-ca, Vault,
AWS IoT; see docs/provisioning.md).`,
		`  keystonectl ca init ./ca --broker-name broker.example
  keystonectl ca issue ./ca --server broker.example
  keystonectl ca issue ./ca --controller keystone-controller
  keystonectl ca issue ./ca --device-id pos-12 --csr pos-12.csr`)
	cmd.AddCommand(newCAInitCmd(opts), newCAIssueCmd(opts))
	return cmd
}

// caResult is what ca init reports.
type caResult struct {
	Certificate    string    `json:"certificate"`
	Key            string    `json:"key"`
	Subject        string    `json:"subject"`
	PermittedNames []string  `json:"permitted_names"`
	NotAfter       time.Time `json:"not_after"`
}

func newCAInitCmd(opts *options) *cobra.Command {
	var (
		names []string
		cn    string
		days  int
	)
	cmd := &cobra.Command{
		Use:   "init DIR --broker-name NAME...",
		Short: "Make a new CA in DIR",
		Long: `Make a new certificate authority in DIR (created with mode 0700): an ECDSA
P-256 key in DIR/ca.key (mode 0600) and a self-signed certificate in
DIR/ca.pem, valid for --days. The CA can sign end certificates only (no
intermediate CAs), and is constrained to the broker's names given with
--broker-name (DNS names or IP addresses, repeatable or comma-separated):
it can vouch for no other host, even if its certificate ends up trusted
somewhere by mistake.

ca.pem is public: the broker trusts devices by it and devices trust the
broker by it. ca.key signs every identity of the fleet: keep it offline.
An existing CA in DIR is never replaced.

Exit codes:
  0  the CA was made
  1  it could not be (for example DIR holds a CA already)
  2  usage error`,
		Example: `  keystonectl ca init /secure/keystone-ca --broker-name broker.example --broker-name 10.0.0.5`,
		Args:    exactArgs(1, "DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(names) == 0 {
				return flagErrorf(cmd, "--broker-name NAME is required: the DNS names or IP addresses devices reach the broker by")
			}
			if days < 1 {
				return flagErrorf(cmd, "--days must be at least 1, got %d", days)
			}
			ca, err := pki.Init(args[0], pki.InitOptions{Name: cn, BrokerNames: names, Validity: daysOf(days)})
			if err != nil {
				return err
			}
			res := caResult{Certificate: filepath.Join(ca.Dir, pki.CACertFile), Key: filepath.Join(ca.Dir, pki.CAKeyFile),
				Subject: ca.Cert.Subject.CommonName, PermittedNames: ca.PermittedNames(), NotAfter: ca.Cert.NotAfter.UTC()}
			return opts.render(res, table{rows: [][]string{
				{"certificate:", res.Certificate},
				{"key:", res.Key + " (keep it offline)"},
				{"subject:", res.Subject},
				{"names:", strings.Join(res.PermittedNames, ", ")},
				{"expires:", res.NotAfter.Format(time.DateOnly)},
			}})
		},
	}
	cmd.Flags().StringSliceVar(&names, "broker-name", nil, "a DNS `NAME` or IP address of the broker (required; repeatable)")
	cmd.Flags().StringVar(&cn, "name", pki.DefaultCAName, "the CA certificate's common `NAME`")
	cmd.Flags().IntVar(&days, "days", int(pki.DefaultCAValidity/(24*time.Hour)), "how many `DAYS` the CA certificate lasts")
	return cmd
}

// issueResult is what ca issue reports.
type issueResult struct {
	Kind        string    `json:"kind"`
	Name        string    `json:"name"`
	Certificate string    `json:"certificate"`
	Key         string    `json:"key,omitempty"` // "" when the key came with a CSR
	Serial      string    `json:"serial"`
	NotAfter    time.Time `json:"not_after"`
}

func newCAIssueCmd(opts *options) *cobra.Command {
	var (
		deviceID, controller, server string
		hosts                        []string
		csrFile, outDir              string
		days                         int
	)
	cmd := &cobra.Command{
		Use:   "issue DIR (--device-id ID | --controller NAME | --server NAME) [--csr FILE]",
		Short: "Issue a device, controller or broker certificate",
		Long: `Issue a certificate with the CA in DIR (see ca init), one of:

  --device-id ID     a device's client certificate: common name ID, client
                     authentication only. The broker's access list pins the
                     device to keystone/ID/# by it.
  --controller NAME  the fleet controller's client certificate (common name
                     NAME, the identity the broker lets use all of keystone/#).
  --server NAME      the broker's server certificate for NAME and each --host
                     (DNS names or IP addresses, all within the CA's names).

Without --csr a new ECDSA P-256 key is made and written beside the
certificate as NAME.key (mode 0600): move it to where it is used and delete
the copy. With --csr FILE the certificate is for the key of that signing
request (made on the device by keystone-agent enroll, so the key never left
it): its signature must verify and its common name must be the name given.
Nothing else the request asks for is taken over.

The certificate is written to OUT/NAME.pem (--out, default the current
folder); existing files are never replaced. It lasts --days, at most until
the CA certificate ends. Nothing renews it by itself: issue a new one (for
a device: enroll again, which keeps its key) before it ends.

A device id with dots (store1.pos12) is refused unless it lies within the
CA's names: OpenSSL-based brokers such as mosquitto read a dotted common
name as a host name and would refuse the device.

Exit codes:
  0  the certificate (and key) were written
  1  they could not be: the CA, the request or a file was refused
  2  usage error`,
		Example: `  keystonectl ca issue ./ca --device-id pos-12 --csr pos-12.csr
  keystonectl ca issue ./ca --device-id pos-13 --out ./factory
  keystonectl ca issue ./ca --controller keystone-controller --days 365
  keystonectl ca issue ./ca --server broker.example --host 10.0.0.5`,
		Args: exactArgs(1, "DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := pki.Request{Validity: daysOf(days), Hosts: hosts}
			n := 0
			for _, k := range []struct {
				v    string
				kind pki.Kind
			}{{deviceID, pki.Device}, {controller, pki.Controller}, {server, pki.Server}} {
				if k.v != "" {
					n++
					req.Kind, req.Name = k.kind, k.v
				}
			}
			if n != 1 {
				return flagErrorf(cmd, "give exactly one of --device-id ID, --controller NAME, --server NAME")
			}
			if len(hosts) > 0 && req.Kind != pki.Server {
				return flagErrorf(cmd, "--host is for --server only")
			}
			if days < 1 {
				return flagErrorf(cmd, "--days must be at least 1, got %d", days)
			}
			ca, err := pki.Load(args[0])
			if err != nil {
				return err
			}
			if csrFile != "" {
				data, err := readInputFile(csrFile)
				if err != nil {
					return err
				}
				csr, err := pki.ParseCSR(data, req.Name)
				if err != nil {
					return fmt.Errorf("%s: %w", csrFile, err)
				}
				req.PublicKey = csr.PublicKey
			}
			certPath := filepath.Join(outDir, req.Name+".pem")
			keyPath := filepath.Join(outDir, req.Name+".key")
			for _, p := range []string{certPath, keyPath} {
				if _, err := os.Lstat(p); err == nil && (p == certPath || csrFile == "") {
					return fmt.Errorf("%s exists already; move it away or choose another --out", p)
				}
			}
			issued, err := ca.Issue(req)
			if err != nil {
				return err
			}
			res := issueResult{Kind: req.Kind.String(), Name: req.Name, Certificate: certPath,
				Serial: issued.Cert.SerialNumber.Text(16), NotAfter: issued.Cert.NotAfter.UTC()}
			if issued.KeyPEM != nil {
				if err := pki.WriteNew(keyPath, issued.KeyPEM, pki.KeyMode); err != nil {
					return fmt.Errorf("write the key: %w", err)
				}
				res.Key = keyPath
			}
			if err := pki.WriteNew(certPath, issued.CertPEM, pki.CertMode); err != nil {
				if res.Key != "" {
					err = errors.Join(err, os.Remove(keyPath))
				}
				return fmt.Errorf("write the certificate: %w", err)
			}
			key := res.Key
			if key == "" {
				key = "(the request's)"
			}
			return opts.render(res, table{header: []string{"KIND", "NAME", "CERTIFICATE", "KEY", "EXPIRES"},
				rows: [][]string{{res.Kind, res.Name, res.Certificate, key, res.NotAfter.Format(time.DateOnly)}}})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&deviceID, "device-id", "", "issue a device certificate for `ID`")
	fl.StringVar(&controller, "controller", "", "issue the fleet controller's certificate, common name `NAME`")
	fl.StringVar(&server, "server", "", "issue the broker's server certificate for `NAME`")
	fl.StringSliceVar(&hosts, "host", nil, "with --server: another DNS name or IP address of the broker (repeatable)")
	fl.StringVar(&csrFile, "csr", "", "certify the key of this PEM signing request `FILE` instead of making one")
	fl.StringVar(&outDir, "out", ".", "write NAME.pem (and NAME.key) into `DIR`")
	fl.IntVar(&days, "days", int(pki.DefaultValidity/(24*time.Hour)), "how many `DAYS` the certificate lasts")
	return cmd
}

func daysOf(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }
