package comms

import (
	"errors"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/internal/mqtttest"
)

// CheckBroker names the step that fails and why.
func TestCheckBroker(t *testing.T) {
	mqtttest.Each(t, func(t *testing.T, kind string) {
		b := mqtttest.Start(t, mqtttest.Options{Kind: kind})
		dev := b.Device(t, deviceID)
		good := Config{DeviceID: deviceID, BrokerURL: b.URL, CAFile: dev.CAFile, CertFile: dev.CertFile, KeyFile: dev.KeyFile}
		if err := CheckBroker(waitCtx(t), good); err != nil {
			t.Fatalf("a good configuration: %v", err)
		}

		closed, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closedAddr := closed.Addr().String()
		closed.Close()
		otherCA := mqtttest.NewCA(t, t.TempDir(), "other")
		foreign := b.Foreign(t, deviceID)
		_, port, _ := net.SplitHostPort(b.Addr)

		for _, tc := range []struct {
			name  string
			mod   func(*Config)
			stage CheckStage
			says  string
		}{
			{"plain without insecure", func(c *Config) { c.BrokerURL = strings.Replace(c.BrokerURL, "mqtts", "mqtt", 1) }, CheckConfig, "insecure = true"},
			{"missing key file", func(c *Config) { c.KeyFile = c.KeyFile + ".gone" }, CheckConfig, ".gone"},
			{"unknown host", func(c *Config) { c.BrokerURL = "mqtts://no-such-host.invalid:8883" }, CheckDNS, "no-such-host.invalid"},
			{"nothing listening", func(c *Config) { c.BrokerURL = "mqtts://" + closedAddr }, CheckTCP, "connection refused"},
			{"broker not signed by ca_file", func(c *Config) { c.CAFile = otherCA.File }, CheckTLS, "does not chain to ca_file " + otherCA.File},
			{"client certificate from another CA", func(c *Config) { c.CertFile, c.KeyFile = foreign.CertFile, foreign.KeyFile }, CheckClientCertificate, "refused the client certificate"},
		} {
			cfg := good
			tc.mod(&cfg)
			err := CheckBroker(waitCtx(t), cfg)
			t.Logf("%s: %v", tc.name, err)
			var ce *CheckError
			if !errors.As(err, &ce) || ce.Stage != tc.stage || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("%s: %v (stage %v); want stage %s saying %q", tc.name, err, stageOf(ce), tc.stage, tc.says)
			}
		}

		// mochi refuses an identity whose name could widen its topics with
		// a CONNACK; mosquitto takes it and limits its topics.
		if kind == mqtttest.KindMochi {
			wild := b.CA.Client(t, "pos+12", nil)
			cfg := good
			cfg.CertFile, cfg.KeyFile = wild.CertFile, wild.KeyFile
			err := CheckBroker(waitCtx(t), cfg)
			t.Logf("refused identity: %v", err)
			var ce *CheckError
			if !errors.As(err, &ce) || ce.Stage != CheckMQTT || !strings.Contains(err.Error(), "CONNACK reason code") {
				t.Errorf("an identity the broker refuses: %v; want the CONNACK's reason", err)
			}
		}

		// A name that reaches the broker but is not in its certificate.
		if host, ok := loopbackAlias(); ok {
			cfg := good
			cfg.BrokerURL = "mqtts://" + net.JoinHostPort(host, port)
			err := CheckBroker(waitCtx(t), cfg)
			t.Logf("host %s: %v", host, err)
			var ce *CheckError
			if !errors.As(err, &ce) || ce.Stage != CheckTLS || !strings.Contains(err.Error(), "server name mismatch") {
				t.Errorf("host %s: %v; want a server name mismatch", host, err)
			}
		} else {
			t.Log("no host name other than localhost resolves to 127.0.0.1 here: the name mismatch case is left out")
		}
	})
}

func stageOf(ce *CheckError) CheckStage {
	if ce == nil {
		return ""
	}
	return ce.Stage
}

// loopbackAlias is a host name, not localhost, that resolves to 127.0.0.1
// only (the test broker's certificate is for 127.0.0.1 and localhost).
func loopbackAlias() (string, bool) {
	names := []string{}
	if h, err := os.Hostname(); err == nil {
		names = append(names, h)
	}
	if data, err := os.ReadFile("/etc/hosts"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] == "127.0.0.1" {
				names = append(names, f[1:]...)
			}
		}
	}
	for _, n := range names {
		if n == "localhost" || strings.HasPrefix(n, "#") {
			continue
		}
		addrs, err := net.LookupHost(n)
		if err == nil && len(addrs) > 0 && !strings.ContainsFunc(strings.Join(addrs, ","), func(r rune) bool { return r == ':' }) &&
			strings.Trim(strings.Join(addrs, ","), "127.0.0.1,") == "" {
			return n, true
		}
	}
	return "", false
}
