package controller

import (
	"context"
	"crypto/ed25519"
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
)

// Defaults for the zero values of Config.
const (
	DefaultSessionExpiry = 7 * 24 * time.Hour
	DefaultKeepAlive     = 30 * time.Second
	defaultPort          = "8883"
)

// Config says how a Controller connects. BrokerURL, CAFile, CertFile and
// KeyFile are required; every other zero value has a meaning given here.
type Config struct {
	// BrokerURL is the broker, mqtts://host[:port] (ssl://, tls:// and
	// tcps:// mean the same); the port defaults to 8883. A plain mqtt://
	// URL is refused: the controller signs deployments and must know whom
	// it talks to.
	BrokerURL string
	// CAFile holds the PEM certificates the broker's certificate is checked
	// against.
	CAFile string
	// CertFile and KeyFile are the controller's client certificate and key
	// (PEM). The broker must allow this identity on <prefix>/#.
	CertFile, KeyFile string
	// TopicPrefix is the first level of every topic; empty means "keystone".
	TopicPrefix string
	// ClientID is the MQTT client id, which names the persistent session;
	// empty means the certificate's common name. Two processes with the
	// same id push each other off the broker: give each its own.
	ClientID string
	// SharedGroup, when set, takes statuses through the shared subscription
	// $share/<SharedGroup>/<prefix>/+/jobs/+/status, so that the controller
	// processes of one group each get a part of them. Empty means a plain
	// subscription: this process gets every status.
	SharedGroup string
	// SignKey signs every job; nil means PublishJob fails with ErrNoSignKey
	// (a controller that only watches needs none).
	SignKey ed25519.PrivateKey
	// SessionExpiry is how long the broker keeps the session, and the
	// statuses queued for it, while the controller is away; zero means
	// DefaultSessionExpiry.
	SessionExpiry time.Duration
	// KeepAlive is the MQTT keep-alive; zero means DefaultKeepAlive.
	KeepAlive time.Duration
	// ReconnectBackoff is the wait before connection attempt n (n counts
	// from 0 after every loss; attempt 0 should not wait); nil means an
	// exponential backoff from 0.5 s to 5 s.
	ReconnectBackoff func(attempt int) time.Duration
	// OnStatus, when set, is called with every new job status, in the
	// order they arrive, from the goroutine that receives them: the broker
	// gets its acknowledgement only when OnStatus returns, so a status
	// recorded there durably cannot be lost. It must not block for long
	// and must not wait on this Controller's connection (PublishJob).
	// Duplicates are told apart by (device, seq) within the life of the
	// Controller only: after a restart of the process, a status the broker
	// sends again must be recognised by the caller's own record.
	OnStatus func(message.JobStatus)
	// OnState, when set, is called with every device state that replaces
	// the one held, under the same rules as OnStatus. A device whose
	// retained state was cleared is reported as a State with only its
	// DeviceID.
	OnState func(message.State)
	// Record, when set, takes what arrives in batches instead: every new
	// job status and every device state that replaces the one held since
	// the last call, in the order they arrived, from a goroutine of its
	// own, while more arrive. The broker gets its acknowledgement of each
	// message only after the Record call that had it returned nil, so a
	// batch stored durably there (in one transaction: one disk sync for
	// many messages) cannot be lost. A batch Record fails is given again,
	// with what arrived meanwhile, after a second. OnStatus and OnState,
	// when set too, are then called after Record, for each of the batch.
	Record func(context.Context, []Arrival) error
	// Logger receives connection events and dropped messages; nil discards
	// them.
	Logger *slog.Logger
	// Now is the clock a job's expiry is checked against before it is
	// published; nil means time.Now.
	Now func() time.Time
}

// Arrival is one message Config.Record takes: a new job status, or a
// device state that replaced the one held (a device whose retained state
// was cleared is a State with only its DeviceID).
type Arrival struct {
	Status *message.JobStatus
	State  *message.State
}

// settings is a Config checked and completed.
type settings struct {
	Config
	url *url.URL
	tls *tls.Config
}

func (cfg Config) settle() (*settings, error) {
	u, err := brokerURL(cfg.BrokerURL)
	if err != nil {
		return nil, err
	}
	tc, cn, err := clientTLS(cfg.CAFile, cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	s := &settings{Config: cfg, url: u, tls: tc}
	if s.TopicPrefix == "" {
		s.TopicPrefix = message.DefaultTopicPrefix
	}
	if strings.ContainsAny(s.TopicPrefix, "+#") || s.TopicPrefix == "$share" {
		return nil, fmt.Errorf("topic prefix %q may not hold + or #", s.TopicPrefix)
	}
	if strings.ContainsAny(s.SharedGroup, "+#/") {
		return nil, fmt.Errorf("shared group %q may not hold +, # or /", s.SharedGroup)
	}
	if s.ClientID == "" {
		s.ClientID = cn
	}
	if s.ClientID == "" {
		return nil, fmt.Errorf("client certificate %s has no common name: set a client id", cfg.CertFile)
	}
	if s.SignKey != nil && len(s.SignKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("sign key has %d bytes, want %d", len(s.SignKey), ed25519.PrivateKeySize)
	}
	s.setDefaults()
	return s, nil
}

func (s *settings) setDefaults() {
	if s.SessionExpiry == 0 {
		s.SessionExpiry = DefaultSessionExpiry
	}
	if s.KeepAlive == 0 {
		s.KeepAlive = DefaultKeepAlive
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.Now == nil {
		s.Now = time.Now
	}
}

// brokerURL parses a broker URL and refuses one without TLS.
func brokerURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("no broker URL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("broker URL: %w", err)
	}
	switch u.Scheme {
	case "mqtts", "ssl", "tls", "tcps":
	case "mqtt", "tcp":
		return nil, fmt.Errorf("broker URL %s: the controller connects only with TLS: use mqtts://", raw)
	default:
		return nil, fmt.Errorf("broker URL %s: scheme %q: want mqtts", raw, u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("broker URL %s has no host", raw)
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), defaultPort)
	}
	return u, nil
}

// clientTLS loads the CA and the client's key pair: TLS 1.2 or newer, the
// broker checked against the CA only, the system's roots left out.
func clientTLS(caFile, certFile, keyFile string) (*tls.Config, string, error) {
	if caFile == "" || certFile == "" || keyFile == "" {
		return nil, "", errors.New("the CA file, the client certificate and its key are all required")
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, "", fmt.Errorf("read CA file: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, "", fmt.Errorf("CA file %s holds no PEM certificate", caFile)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, "", fmt.Errorf("load client certificate %s and key %s: %w", certFile, keyFile, err)
	}
	cn := ""
	if pair.Leaf != nil {
		cn = pair.Leaf.Subject.CommonName
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, Certificates: []tls.Certificate{pair}}, cn, nil
}
