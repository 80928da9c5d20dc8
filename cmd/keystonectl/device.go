package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/keystone-edge/keystone/agent/provision"
	"github.com/keystone-edge/keystone/comms/pki"
)

func newDeviceCmd(opts *options) *cobra.Command {
	cmd := newGroupCmd("device", "Provision devices",
		`Put a device's identity, agent.toml and trust files into a live system or
an image's root folder (see docs/provisioning.md).`,
		`  keystonectl device provision --root ./image --device-id pos-12 --ca ./ca ...`)
	cmd.AddCommand(newDeviceProvisionCmd(opts))
	return cmd
}

// provisionedFile is one file as device provision reports it.
type provisionedFile struct {
	Path  string `json:"path"`
	Mode  string `json:"mode"`
	Owner string `json:"owner"`
	Kept  bool   `json:"kept,omitempty"`
}

// provisionResult is what device provision reports.
type provisionResult struct {
	DeviceID    string            `json:"device_id"`
	Root        string            `json:"root"`
	Files       []provisionedFile `json:"files"`
	Certificate struct {
		Subject  string    `json:"subject"`
		Issuer   string    `json:"issuer"`
		NotAfter time.Time `json:"not_after"`
	} `json:"certificate"`
	Warnings []string `json:"warnings"`
}

func newDeviceProvisionCmd(opts *options) *cobra.Command {
	var (
		o          provision.Options
		caDir      string
		days       int
		httpListen string
	)
	cmd := &cobra.Command{
		Use: "provision --root DIR --device-id ID --broker URL --ca-cert CA (--ca DIR | --cert FILE --key FILE)\n" +
			"  [--repository URL --tuf-root ROOT] [--trust-key OPS.pub...] [--groups a,b] [--force]",
		Short: "Write a device's identity, agent.toml and trust files into a root folder",
		Long: `Write everything a device needs to join the fleet into the root folder DIR:
the live system with --root /, or an image's root folder before it is
flashed (offline: nothing is contacted). The agent in that root starts with
it as it is.

  /etc/keystone/agent.toml        device id, groups, broker, repository and
                                  trust; file paths in it are relative to
                                  /etc/keystone                   0644 root
  /etc/keystone/device.key        the device key          0600 keystone:keystone
  /etc/keystone/device.pem        its certificate                 0644 root
  /etc/keystone/ca.pem            the broker's CA (--ca-cert)     0644 root
  /etc/keystone/trust/NAME.pub    each --trust-key                0644 root
  /etc/keystone/tuf/root.json     the repository's TUF root       0644 root
  /etc/keystone/repository-ca.pem --repository-ca, when given     0644 root
  /var/lib/keystone/              the data folder          0750 keystone:keystone

The keystone user and group are looked up in DIR/etc/passwd and
DIR/etc/group — the image's, not this machine's — and must exist there
(the keystone package creates them). Setting owners needs root (or
fakeroot when building an image).

The identity is either issued here by the CA in --ca DIR (a new key,
written only into the root folder), or given as --cert and --key (made by
another CA; or the key made on the device by keystone-agent enroll, which
stays where it is). Everything is checked before anything is written: the
certificate belongs to the key, the TUF root is signed by its own keys, the
trust keys are ed25519 public keys, and agent.toml passes the agent's own
validation. A root folder that holds a device key, certificate or
agent.toml already is refused unless --force; a symbolic link out of the
root folder is always refused.

Exit codes:
  0  the device was provisioned
  1  it was not: something given was refused, or the root folder holds an
     identity already (nothing was written)
  2  usage error`,
		Example: `  keystonectl device provision --root ./image-root --device-id pos-12 --groups canary,kyiv \
    --broker mqtts://broker.example:8883 --ca-cert ./ca/ca.pem --ca ./ca \
    --repository https://repo.example/keystone/ --tuf-root ./repo/repository/root.json \
    --trust-key ops.pub
  keystonectl device provision --root / --device-id pos-12 --cert pos-12.pem \
    --key /etc/keystone/device.key --broker mqtts://broker.example:8883 --ca-cert ca.pem ...`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, f := range []struct{ name, v string }{{"root", o.Root}, {"device-id", o.DeviceID}, {"broker", o.Broker}, {"ca-cert", o.BrokerCA}} {
				if f.v == "" {
					return flagErrorf(cmd, "--%s is required", f.name)
				}
			}
			if caDir != "" && (o.CertFile != "" || o.KeyFile != "") {
				return flagErrorf(cmd, "give --ca DIR or --cert and --key, not both")
			}
			if caDir == "" && (o.CertFile == "" || o.KeyFile == "") {
				return flagErrorf(cmd, "the device needs --cert FILE and --key FILE, or --ca DIR to issue them")
			}
			if cmd.Flags().Changed("http-listen") {
				o.HTTPListen = &httpListen
			}
			o.Validity = daysOf(days)
			if caDir != "" {
				ca, err := pki.Load(caDir)
				if err != nil {
					return err
				}
				o.CA = ca
			}
			res, err := provision.Provision(o)
			if err != nil {
				return err
			}
			out := provisionResult{DeviceID: o.DeviceID, Root: o.Root, Warnings: res.Warnings}
			if out.Warnings == nil {
				out.Warnings = []string{}
			}
			out.Certificate.Subject = res.Certificate.Subject.CommonName
			out.Certificate.Issuer = res.Certificate.Issuer.CommonName
			out.Certificate.NotAfter = res.Certificate.NotAfter.UTC()
			t := table{header: []string{"PATH", "MODE", "OWNER", ""}}
			for _, f := range res.Files {
				pf := provisionedFile{Path: f.Path, Mode: fmt.Sprintf("%04o", f.Mode.Perm()), Owner: f.Owner, Kept: f.Kept}
				out.Files = append(out.Files, pf)
				note := ""
				if f.Kept {
					note = "kept (already there)"
				}
				t.rows = append(t.rows, []string{pf.Path, pf.Mode, pf.Owner, note})
			}
			if opts.Output != formatJSON {
				for _, w := range res.Warnings {
					fmt.Fprintf(opts.ErrOut, "warning: %s\n", terminalSafe(w, true))
				}
			}
			return opts.render(out, t)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Root, "root", "", "the root `DIR`: / for this system, or an image's root folder (required)")
	fl.StringVar(&o.DeviceID, "device-id", "", "the device's `ID` (required)")
	fl.StringSliceVar(&o.Groups, "groups", nil, "the device's fleet `GROUPS`, comma-separated")
	fl.StringVar(&o.Broker, "broker", "", "the MQTT broker, mqtts://HOST:PORT (required)")
	fl.StringVar(&o.BrokerCA, "ca-cert", "", "the CA `FILE` (PEM) the broker's certificate is checked against (required)")
	fl.StringVar(&o.Repository, "repository", "", "the component repository's https:// `URL`")
	fl.StringVar(&o.TUFRoot, "tuf-root", "", "the repository's trusted root.json `FILE` (required with --repository)")
	fl.StringVar(&o.RepositoryCA, "repository-ca", "", "a CA bundle `FILE` for the repository's https, when not a public CA")
	fl.StringSliceVar(&o.TrustKeys, "trust-key", nil, "an ed25519 public key `FILE` whose signatures the device trusts (repeatable)")
	fl.StringVar(&o.CertFile, "cert", "", "the device certificate `FILE` (PEM), with --key")
	fl.StringVar(&o.KeyFile, "key", "", "the device key `FILE` (PEM, mode 0600), with --cert")
	fl.StringVar(&caDir, "ca", "", "issue the device's certificate and key with the CA in `DIR` (see ca init)")
	fl.IntVar(&days, "days", int(pki.DefaultValidity/(24*time.Hour)), "with --ca: how many `DAYS` the certificate lasts")
	fl.StringVar(&httpListen, "http-listen", "", "write api.http_listen `ADDR` (\"\" turns the metrics listener off); default: the agent's")
	fl.BoolVar(&o.Force, "force", false, "replace an identity the root folder holds already")
	return cmd
}
