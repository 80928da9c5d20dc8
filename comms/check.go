package comms

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// CheckStage names the step of a broker check that failed.
type CheckStage string

// The steps of CheckBroker, in order.
const (
	CheckConfig            CheckStage = "config"             // the settings or the TLS files
	CheckDNS               CheckStage = "dns"                // resolving the broker's host name
	CheckTCP               CheckStage = "tcp"                // connecting to its port
	CheckTLS               CheckStage = "tls"                // the broker's certificate, or the handshake
	CheckClientCertificate CheckStage = "client_certificate" // the broker refused the device's certificate
	CheckMQTT              CheckStage = "mqtt"               // the broker refused the MQTT connection or did not answer
	CheckSubscribe         CheckStage = "subscribe"          // the broker refused the device's job subscription
)

// CheckError is why CheckBroker failed: the step, and the cause.
type CheckError struct {
	Stage CheckStage
	Err   error
}

func (e *CheckError) Error() string { return e.Err.Error() }
func (e *CheckError) Unwrap() error { return e.Err }

func checkFailed(stage CheckStage, format string, args ...any) *CheckError {
	return &CheckError{Stage: stage, Err: fmt.Errorf(format, args...)}
}

// checkTimeout bounds each step of CheckBroker when ctx has no deadline.
const checkTimeout = 10 * time.Second

// CheckBroker dials the broker once as cfg says (only the connection
// settings are used: DeviceID, BrokerURL, Insecure, the TLS files,
// TopicPrefix) and returns nil when the device could connect and subscribe
// to its jobs, or a *CheckError saying which step failed and why: the host
// name does not resolve, the port does not answer, the broker's
// certificate does not chain to ca_file or is not for the host, the broker
// refused the client certificate, the broker refused the connection (its
// CONNACK reason), or refused the subscription.
//
// It connects with the client id <device_id>-check and a clean session
// that ends with the connection, so that a running agent keeps its
// session and its queued jobs. A broker that insists on the client id
// being the device id refuses this one ("client identifier not valid").
// Some brokers (mosquitto) accept a subscription they will deliver nothing
// through; the subscription step cannot see that.
func CheckBroker(ctx context.Context, cfg Config) error {
	s, err := cfg.connection()
	if err != nil {
		return &CheckError{Stage: CheckConfig, Err: err}
	}
	step := func() (context.Context, context.CancelFunc) {
		if _, ok := ctx.Deadline(); ok {
			return context.WithCancel(ctx)
		}
		return context.WithTimeout(ctx, checkTimeout)
	}
	host, port := s.url.Hostname(), s.url.Port()

	// DNS
	sctx, cancel := step()
	addrs, err := net.DefaultResolver.LookupHost(sctx, host)
	cancel()
	if err != nil {
		return checkFailed(CheckDNS, "resolve the broker's host %s: %w", host, err)
	}

	// TCP
	sctx, cancel = step()
	var dialer net.Dialer
	var conn net.Conn
	var dialErr error
	for _, a := range addrs {
		if conn, dialErr = dialer.DialContext(sctx, "tcp", net.JoinHostPort(a, port)); dialErr == nil {
			break
		}
	}
	cancel()
	if conn == nil {
		return checkFailed(CheckTCP, "connect to %s (%s): %w", s.url.Host, strings.Join(addrs, ", "), dialErr)
	}
	defer conn.Close()

	// TLS
	if s.tls != nil {
		tc := s.tls.Clone()
		tc.ServerName = host
		tconn := tls.Client(conn, tc)
		sctx, cancel = step()
		err := tconn.HandshakeContext(sctx)
		cancel()
		if err != nil {
			return tlsFailure(s, host, err)
		}
		if err := clientCertVerdict(tconn); err != nil {
			return checkFailed(CheckClientCertificate, "the broker refused the client certificate %s: %w", s.CertFile, err)
		}
		conn = tconn
	}

	// MQTT
	clientID := s.DeviceID + "-check"
	// paho writes a packet in several writes, and its pinger writes its
	// first PINGREQ from a goroutine of its own: without the lock the two
	// can interleave, and the broker drops the connection (malformed packet).
	cli := paho.NewClient(paho.ClientConfig{ClientID: clientID, Conn: packets.NewThreadSafeConn(conn)})
	sctx, cancel = step()
	defer cancel()
	ca, err := cli.Connect(sctx, &paho.Connect{ClientID: clientID, CleanStart: true, KeepAlive: uint16(keepAlive / time.Second)})
	if err != nil {
		if remoteAlert(err) {
			return checkFailed(CheckClientCertificate, "the broker refused the client certificate %s: %w", s.CertFile, err)
		}
		if ca != nil && ca.ReasonCode >= 0x80 {
			reason := ""
			if ca.Properties != nil {
				reason = ca.Properties.ReasonString
			}
			return checkFailed(CheckMQTT, "the broker refused the connection: %s (CONNACK reason code %#x)",
				connackReason(ca.ReasonCode, reason), ca.ReasonCode)
		}
		return checkFailed(CheckMQTT, "MQTT connect to %s: %w", s.url.Host, err)
	}
	defer func() { _ = cli.Disconnect(&paho.Disconnect{ReasonCode: 0}) }()

	topic := s.topics.JobNotify()
	sa, err := cli.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1, RetainHandling: 2}}})
	if sa != nil && len(sa.Reasons) == 1 && sa.Reasons[0] >= 0x80 {
		return checkFailed(CheckSubscribe, "the broker refused the subscription to %s (reason code %#x): is the identity %q allowed on %s/%s/#?",
			topic, sa.Reasons[0], s.commonName(), s.TopicPrefix, s.DeviceID)
	}
	if err != nil {
		return checkFailed(CheckSubscribe, "subscribe to %s: %w", topic, err)
	}
	return nil
}

// tlsFailure says why the TLS handshake failed.
func tlsFailure(s *settings, host string, err error) *CheckError {
	roots := "the system's roots"
	if s.CAFile != "" {
		roots = "ca_file " + s.CAFile
	}
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &unknown):
		return checkFailed(CheckTLS, "the broker's certificate does not chain to %s: %w", roots, err)
	case errors.As(err, &hostname):
		return checkFailed(CheckTLS, "the broker's certificate is not for %s (server name mismatch): %w", host, err)
	case errors.As(err, &invalid):
		return checkFailed(CheckTLS, "the broker's certificate is not valid: %w", err)
	case remoteAlert(err):
		return checkFailed(CheckClientCertificate, "the broker refused the client certificate %s: %w", s.CertFile, err)
	}
	return checkFailed(CheckTLS, "TLS handshake with %s: %w", s.url.Host, err)
}

// verdictWait is how long CheckBroker waits, after a TLS 1.3 handshake,
// for the broker to refuse the client certificate.
const verdictWait = 500 * time.Millisecond

// clientCertVerdict waits briefly for the broker's verdict on the client
// certificate. With TLS 1.3 the client's handshake ends before the server
// has checked the client's certificate: a refusal comes as an alert, or a
// closed connection, in place of the first data. An MQTT broker sends
// nothing before CONNECT, so silence is acceptance.
func clientCertVerdict(conn *tls.Conn) error {
	if conn.ConnectionState().Version < tls.VersionTLS13 {
		return nil // the verdict was part of the handshake
	}
	if err := conn.SetReadDeadline(time.Now().Add(verdictWait)); err != nil {
		return nil
	}
	defer func() { _ = conn.SetReadDeadline(time.Time{}) }()
	var one [1]byte
	_, err := conn.Read(one[:])
	var ne net.Error
	switch {
	case err == nil, errors.As(err, &ne) && ne.Timeout():
		return nil
	case remoteAlert(err):
		return err
	}
	return fmt.Errorf("the broker closed the connection right after the TLS handshake: %w", err)
}

// remoteAlert reports an error that is a TLS alert from the broker: after
// the broker's certificate was accepted, that is the broker refusing the
// client's (TLS 1.3 sends it with the first data, not in the handshake).
func remoteAlert(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return true
	}
	return strings.Contains(err.Error(), "remote error: tls:")
}

// connackReason names a CONNACK reason code, with the broker's reason
// string when it sent one.
func connackReason(code byte, reason string) string {
	name, ok := connackReasons[code]
	if !ok {
		name = "refused"
	}
	squash := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, " ", "")) }
	if reason != "" && squash(reason) != squash(name) {
		name += ": " + reason
	}
	return name
}

var connackReasons = map[byte]string{
	0x80: "unspecified error",
	0x81: "malformed packet",
	0x82: "protocol error",
	0x83: "implementation specific error",
	0x84: "unsupported protocol version",
	0x85: "client identifier not valid",
	0x86: "bad user name or password",
	0x87: "not authorized",
	0x88: "server unavailable",
	0x89: "server busy",
	0x8A: "banned",
	0x8C: "bad authentication method",
	0x95: "packet too large",
	0x97: "quota exceeded",
	0x9C: "use another server",
	0x9D: "server moved",
	0x9F: "connection rate exceeded",
}
