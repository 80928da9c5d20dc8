package doctor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/keystone-edge/keystone/agent/provision"
	"github.com/keystone-edge/keystone/comms"
	"github.com/keystone-edge/keystone/comms/pki"
	"github.com/keystone-edge/keystone/ota"
)

// expirySoon is when the clock check starts warning of the device
// certificate's end.
const expirySoon = 30 * 24 * time.Hour

// clock checks the clock against the device certificate's validity: a
// clock before it (a device without a real-time clock, before NTP) makes
// every TLS connection fail.
func (d *run) clock() {
	now := d.env.Now()
	certFile := d.cfg.MQTT.CertFile
	if certFile == "" {
		d.add("clock", Skip, "no device certificate to compare the clock with (local-only mode)", "")
		return
	}
	cert, err := pki.LoadCertificate(d.env.path(certFile))
	if err != nil {
		d.add("clock", Fail, err.Error(), "provision the device's identity (keystonectl device provision)")
		return
	}
	const layout = "2006-01-02 15:04 MST"
	switch {
	case now.Before(cert.NotBefore):
		d.add("clock", Fail, fmt.Sprintf("the clock says %s, before the device certificate is valid (%s): every TLS connection will fail",
			now.UTC().Format(layout), cert.NotBefore.UTC().Format(layout)),
			"set the clock (timedatectl set-ntp true, or check that NTP is reachable)")
	case now.After(cert.NotAfter):
		d.add("clock", Fail, fmt.Sprintf("the device certificate expired on %s", cert.NotAfter.UTC().Format(layout)),
			"issue a new certificate (keystone-agent enroll, then keystonectl ca issue --csr), or check the clock")
	case cert.NotAfter.Sub(now) < expirySoon:
		d.add("clock", Warn, fmt.Sprintf("the device certificate ends on %s, in %d days", cert.NotAfter.UTC().Format(layout),
			int(cert.NotAfter.Sub(now).Hours()/24)), "issue a new certificate (keystone-agent enroll, then keystonectl ca issue --csr)")
	default:
		d.add("clock", OK, fmt.Sprintf("%s is within the device certificate's validity (until %s)",
			now.UTC().Format(layout), cert.NotAfter.UTC().Format(time.DateOnly)), "")
	}
}

// brokerFixes says what to do about each broker check stage.
var brokerFixes = map[comms.CheckStage]string{
	comms.CheckConfig:            "correct the [mqtt] files in agent.toml",
	comms.CheckDNS:               "check the broker's host name in mqtt.broker and the device's DNS",
	comms.CheckTCP:               "check that the broker runs and that the network (firewall, port) lets the device reach it",
	comms.CheckTLS:               "mqtt.ca_file must hold the CA that signed the broker's certificate, issued for the host name in mqtt.broker",
	comms.CheckClientCertificate: "the broker must trust the CA that issued the device certificate (its cafile), and the certificate must be valid",
	comms.CheckMQTT:              "check the broker's log: its authentication and access list must accept the device's certificate name",
	comms.CheckSubscribe:         "the broker's access list must allow the device on <topic_prefix>/<device_id>/#",
}

// broker connects to the broker once with the device's mTLS settings.
func (d *run) broker(ctx context.Context) {
	m := d.cfg.MQTT
	if m.Broker == "" {
		d.add("broker", Skip, "no mqtt.broker: local-only mode", "")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, d.env.Timeout)
	defer cancel()
	err := comms.CheckBroker(ctx, comms.Config{DeviceID: d.cfg.DeviceID, BrokerURL: m.Broker, Insecure: m.Insecure,
		CAFile: d.env.path(m.CAFile), CertFile: d.env.path(m.CertFile), KeyFile: d.env.path(m.KeyFile), TopicPrefix: m.TopicPrefix})
	var ce *comms.CheckError
	switch {
	case err == nil:
		d.add("broker", OK, m.Broker+" accepts the device's certificate and its job subscription", "")
	case errors.As(err, &ce):
		d.add("broker", Fail, fmt.Sprintf("%s (%s): %v", m.Broker, ce.Stage, err), brokerFixes[ce.Stage])
	default:
		d.add("broker", Fail, m.Broker+": "+err.Error(), "")
	}
}

// repository checks the TUF root and fetches the repository's current
// metadata once, into a throwaway cache.
func (d *run) repository(ctx context.Context) {
	t := d.cfg.Trust
	if t.Repository == "" {
		d.add("repository", Skip, "no trust.repository: recipes come with each deployment", "")
		return
	}
	rootFile := d.env.path(t.TUFRoot)
	data, err := os.ReadFile(rootFile)
	if err != nil {
		d.add("repository", Fail, "trust.tuf_root: "+err.Error(), "copy the repository's root.json to trust.tuf_root")
		return
	}
	if err := provision.VerifyTUFRoot(data); err != nil {
		d.add("repository", Fail, "trust.tuf_root "+t.TUFRoot+": "+err.Error(), "copy the repository's root.json (keystonectl repo init made it) to trust.tuf_root")
		return
	}
	cache, err := os.MkdirTemp("", "keystone-doctor-tuf-")
	if err != nil {
		d.add("repository", Fail, err.Error(), "")
		return
	}
	defer os.RemoveAll(cache)
	client, err := ota.NewHTTPClient(ota.HTTPClientConfig{CAFile: d.env.path(d.cfg.Artifacts.CAFile),
		DialTimeout: d.env.Timeout, ResponseHeaderTimeout: d.env.Timeout})
	if err != nil {
		d.add("repository", Fail, "artifacts.ca_file: "+err.Error(), "")
		return
	}
	repo, err := ota.NewRepository(ota.RepositoryConfig{RootFile: rootFile, URL: t.Repository, CacheDir: cache,
		HTTPClient: client, AllowHTTP: d.cfg.Artifacts.AllowHTTP, RequestTimeout: d.env.Timeout})
	if err != nil {
		d.add("repository", Fail, err.Error(), "")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, d.env.Timeout)
	defer cancel()
	if _, err := repo.Targets(ctx); err != nil {
		d.add("repository", Fail, t.Repository+": "+err.Error(),
			"check that the repository is served at trust.repository and reachable from the device (and its https CA: artifacts.ca_file), "+
				"that it was published recently (keystonectl repo publish), and that trust.tuf_root is its root")
		return
	}
	d.add("repository", OK, t.Repository+" serves metadata signed under trust.tuf_root", "")
}
