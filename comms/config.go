package comms

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/keystone-edge/keystone/comms/message"
	"github.com/keystone-edge/keystone/ota/sign"
	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor/deploy"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// FaultJobRecorded is the FaultHook point right after a job was recorded,
// before the broker is acknowledged and before any status of it is sent.
const FaultJobRecorded = "job:recorded"

// DefaultSessionExpiry is how long the broker keeps a device's session
// while it is offline when Config.SessionExpiry is zero.
const DefaultSessionExpiry = 7 * 24 * time.Hour

const (
	keepAlive        = 30 * time.Second
	defaultTLSPort   = "8883"
	defaultPlainPort = "1883"
)

// Deployer is what comms needs of the deployment engine; *deploy.Engine
// implements it.
type Deployer interface {
	// Submit validates and queues a deployment. Submitting a known id with
	// the same manifest answers that deployment (Accepted.Existing).
	Submit(ctx context.Context, req deploy.Request) (deploy.Accepted, error)
	// Get returns a deployment, or an error matching deploy.ErrNotFound.
	Get(ctx context.Context, id string) (deploy.Deployment, error)
	// Cancel cancels a queued or running deployment; deploy.ErrNotFound for
	// an unknown id, deploy.ErrConflict for a finished one.
	Cancel(ctx context.Context, id string) error
}

// AgentUpdater is what comms needs of the agent's update of itself, for
// agent_update jobs; the job id is the update's id.
type AgentUpdater interface {
	// UpdateAgent starts the update of job jobID to version; starting the
	// same job again is not an error.
	UpdateAgent(ctx context.Context, jobID, version string) error
	// AgentUpdateStatus says where the update of job jobID stands; false
	// when there is none.
	AgentUpdateStatus(jobID string) (AgentUpdateStatus, bool)
}

// AgentUpdateStatus is an agent update as a job status reports it.
type AgentUpdateStatus struct {
	Phase      string // staging, trial, reverting, committed, failed
	Finished   bool
	Succeeded  bool
	RolledBack bool
	Code       string
	Detail     string
}

// Config says how a Device connects and what it drives. DeviceID,
// BrokerURL, Store, Deployer and Bus are required; every other zero value
// has a meaning given here.
type Config struct {
	// DeviceID is the device's id: its MQTT client id and the second level
	// of its topics. 1 to 128 of A-Z a-z 0-9 . _ -. The client
	// certificate's common name should be the same: brokers pin a device to
	// its topics by it.
	DeviceID string
	// Groups are the fleet groups the device reports in its state; nil
	// reports none.
	Groups []string
	// AgentVersion is reported in every status and state message.
	AgentVersion string
	// BrokerURL is mqtts://host[:port] (ssl://, tls:// and tcps:// mean the
	// same; the port defaults to 8883), or mqtt://host[:port] (port 1883),
	// which is refused unless Insecure is set.
	BrokerURL string
	// Insecure allows a plain mqtt:// broker URL: no TLS at all. It does
	// not weaken the checks of an mqtts:// connection.
	Insecure bool
	// CAFile holds the PEM certificates the broker's certificate must chain
	// to; empty means the system's roots.
	CAFile string
	// CertFile and KeyFile are the device's client certificate and key
	// (PEM), required for mqtts://; ignored for an Insecure mqtt:// URL.
	CertFile, KeyFile string
	// TopicPrefix is the first level of every topic; empty means
	// message.DefaultTopicPrefix.
	TopicPrefix string
	// SessionExpiry is how long the broker keeps the device's session (its
	// subscription and the jobs queued for it) while the device is offline;
	// zero means DefaultSessionExpiry. A device away longer still finds its
	// latest job, which is retained.
	SessionExpiry time.Duration
	// Keyring holds the keys job signatures are checked against (trust.keys);
	// nil trusts no key, so every job is refused as SIGNATURE_INVALID.
	Keyring *sign.Keyring
	// Store keeps the jobs seen and the outbox of messages to send.
	Store *store.Store
	// Deployer runs deployment jobs.
	Deployer Deployer
	// AgentUpdater runs agent_update jobs; nil refuses them (UNSUPPORTED).
	AgentUpdater AgentUpdater
	// Bus carries component transitions (published on …/events and
	// reflected in …/state) and deployment progress (job statuses).
	Bus *events.Bus
	// Components lists the supervised components now, for state and final
	// status messages. It is called from several goroutines. nil reports
	// none.
	Components func() []message.ComponentStatus
	// Now is the clock job expiry is checked against and messages are
	// stamped with; nil means time.Now.
	Now func() time.Time
	// Logger receives connection events, jobs taken or refused, and
	// messages dropped; nil discards them.
	Logger *slog.Logger
	// PublishMetrics publishes plugin runs' values on …/metrics (see
	// Device.PublishMetrics).
	PublishMetrics bool
	// FaultHook is for tests, which crash the agent at a named point
	// (FaultJobRecorded); nil in production.
	FaultHook func(point string)
}

// settings is a Config checked and completed.
type settings struct {
	Config
	url    *url.URL
	tls    *tls.Config // nil for a plain mqtt:// URL
	topics message.Topics
}

// settle checks cfg, fills in the defaults and loads the TLS material.
// It does no network I/O.
func (cfg Config) settle() (*settings, error) {
	s, err := cfg.connection()
	if err != nil {
		return nil, err
	}
	switch {
	case s.Store == nil:
		return nil, errors.New("no store")
	case s.Deployer == nil:
		return nil, errors.New("no deployment engine")
	case s.Bus == nil:
		return nil, errors.New("no event bus")
	}
	if s.Components == nil {
		s.Components = func() []message.ComponentStatus { return nil }
	}
	return s, nil
}

// connection checks and completes what connecting needs: the device id,
// the broker URL, the TLS material, the topic prefix.
func (cfg Config) connection() (*settings, error) {
	if !validDeviceID(cfg.DeviceID) {
		return nil, fmt.Errorf("device id %q must be 1 to 128 of A-Z a-z 0-9 . _ -", cfg.DeviceID)
	}
	u, err := brokerURL(cfg.BrokerURL, cfg.Insecure)
	if err != nil {
		return nil, err
	}
	s := &settings{Config: cfg, url: u}
	if u.Scheme != "mqtt" {
		if s.tls, err = clientTLS(cfg.CAFile, cfg.CertFile, cfg.KeyFile); err != nil {
			return nil, err
		}
	}
	if s.TopicPrefix == "" {
		s.TopicPrefix = message.DefaultTopicPrefix
	}
	if strings.ContainsAny(s.TopicPrefix, "+#\x00") || strings.HasPrefix(s.TopicPrefix, "$") {
		return nil, fmt.Errorf("topic prefix %q may not hold + or # or start with $", s.TopicPrefix)
	}
	if s.SessionExpiry < 0 {
		return nil, fmt.Errorf("session expiry %s is negative", s.SessionExpiry)
	}
	if s.SessionExpiry == 0 {
		s.SessionExpiry = DefaultSessionExpiry
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s.topics = message.Topics{Prefix: s.TopicPrefix, DeviceID: s.DeviceID}
	return s, nil
}

func validDeviceID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return false
		}
	}
	return true
}

// brokerURL parses a broker URL: TLS schemes are normalised to mqtts, plain
// ones to mqtt (refused unless insecure), and the port defaults by scheme.
func brokerURL(raw string, insecure bool) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("no broker URL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("broker URL: %w", err)
	}
	port := defaultTLSPort
	switch u.Scheme {
	case "mqtts", "ssl", "tls", "tcps":
		u.Scheme = "mqtts"
	case "mqtt", "tcp":
		if !insecure {
			return nil, fmt.Errorf("broker URL %s has no TLS: use mqtts://, or set insecure = true to allow a plain connection", raw)
		}
		u.Scheme, port = "mqtt", defaultPlainPort
	default:
		return nil, fmt.Errorf("broker URL %s: scheme %q: want mqtts (or mqtt with insecure = true)", raw, u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("broker URL %s has no host", raw)
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), port)
	}
	return u, nil
}

// clientTLS loads the device's key pair and the CA: TLS 1.2 or newer, the
// broker checked against the CA (the system's roots when caFile is empty).
func clientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("cert_file and key_file are required for an mqtts:// broker: the broker knows the device by its certificate")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		caPEM, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("ca_file %s holds no PEM certificate", caFile)
		}
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("cert_file %s and key_file %s: %w", certFile, keyFile, err)
	}
	cfg.Certificates = []tls.Certificate{pair}
	return cfg, nil
}

// commonName is the client certificate's common name, "" when unknown.
func (s *settings) commonName() string {
	if s.tls == nil || len(s.tls.Certificates) == 0 || s.tls.Certificates[0].Leaf == nil {
		return ""
	}
	return s.tls.Certificates[0].Leaf.Subject.CommonName
}
