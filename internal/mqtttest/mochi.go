package mqtttest

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// mochi runs the mochi-mqtt broker in the test process with the same
// certificates and access rules as mosquitto. A restart is a new server on
// the same address; with persistence its sessions and retained messages
// come back from a memStore the Broker keeps.
type mochi struct {
	tls    *tls.Config
	store  *memStore // nil without persistence
	server *mqtt.Server
}

func newMochi(t testing.TB, b *Broker) *mochi {
	t.Helper()
	_, _, pair := b.serverCert(t)
	m := &mochi{tls: &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		ClientCAs:    b.CA.pool(),
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}}
	if b.opts.Persistence {
		m.store = newMemStore()
	}
	return m
}

func (m *mochi) start(t testing.TB, b *Broker) error {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(b.log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s := mqtt.New(&mqtt.Options{Logger: logger})
	if err := s.AddHook(&aclHook{prefix: b.Prefix, controller: b.Controller}, nil); err != nil {
		return err
	}
	if m.store != nil {
		if err := s.AddHook(m.store, nil); err != nil {
			return err
		}
	}
	addr := b.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l := &listener{id: "mtls", addr: addr, tls: m.tls, conns: map[net.Conn]struct{}{}}
	if err := s.AddListener(l); err != nil {
		return err
	}
	if err := s.Serve(); err != nil {
		_ = s.Close()
		return err
	}
	b.Addr = l.Address()
	m.server = s
	return nil
}

// stop closes the server: its listener, then every client (Close waits
// for their goroutines, so the store has seen every disconnect).
func (m *mochi) stop(t testing.TB) {
	t.Helper()
	if m.server == nil {
		return
	}
	if err := m.server.Close(); err != nil {
		t.Errorf("close mochi: %v", err)
	}
	m.server = nil
}

func (m *mochi) forget(testing.TB) {
	if m.store != nil {
		m.store = newMemStore()
	}
}

// aclHook enforces what mosquitto's use_identity_as_username and access
// list do: the username is the client certificate's common name, a
// device may only read and write <prefix>/<its name>/#, and the
// controller all of <prefix>/#.
type aclHook struct {
	mqtt.HookBase
	prefix     string
	controller string
}

func (h *aclHook) ID() string { return "keystone-acl" }

func (h *aclHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
}

// OnConnectAuthenticate replaces whatever username the client sent with
// its certificate's common name; the TLS handshake is over by the time
// the CONNECT packet has been read.
func (h *aclHook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	conn, ok := cl.Net.Conn.(*tls.Conn)
	if !ok {
		return false
	}
	certs := conn.ConnectionState().PeerCertificates
	// A name with a wildcard or a level separator could widen its own
	// topics; mosquitto refuses those names in its patterns too.
	if len(certs) == 0 || certs[0].Subject.CommonName == "" || strings.ContainsAny(certs[0].Subject.CommonName, "+#/") {
		return false
	}
	cl.Properties.Username = []byte(certs[0].Subject.CommonName)
	return true
}

// OnACLCheck is asked for every publish (write), every subscription
// filter and every delivery (read).
func (h *aclHook) OnACLCheck(cl *mqtt.Client, topic string, _ bool) bool {
	user := string(cl.Properties.Username)
	if user == "" {
		return false
	}
	topic = unshare(topic)
	if user == h.controller {
		return strings.HasPrefix(topic, h.prefix+"/")
	}
	own := h.prefix + "/" + user
	return topic == own || strings.HasPrefix(topic, own+"/")
}

// unshare strips "$share/<group>/" from a shared subscription's filter.
func unshare(filter string) string {
	rest, ok := strings.CutPrefix(filter, "$share/")
	if !ok {
		return filter
	}
	_, f, ok := strings.Cut(rest, "/")
	if !ok {
		return ""
	}
	return f
}

// listener is mochi's TLS listener changed for restarts. mochi's own stops
// accepting only after it has disconnected the clients, so a client that
// reconnects at once lands on the server going away, and a connection
// accepted during the close is left open with nobody serving it: the
// client then hangs until its connect timeout. This one closes the port
// first and, after the clients, every connection it accepted.
type listener struct {
	id, addr string
	tls      *tls.Config
	ln       net.Listener
	log      *slog.Logger
	mu       sync.Mutex
	closed   bool
	conns    map[net.Conn]struct{} // accepted and not yet done
}

func (l *listener) ID() string       { return l.id }
func (l *listener) Protocol() string { return "tcp" }

func (l *listener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.addr
}

func (l *listener) Init(log *slog.Logger) error {
	ln, err := tls.Listen("tcp", l.addr, l.tls)
	l.ln, l.log = ln, log
	return err
}

func (l *listener) Serve(establish listeners.EstablishFn) {
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			conn.Close()
			continue
		}
		l.conns[conn] = struct{}{}
		l.mu.Unlock()
		go func() {
			if err := establish(l.id, conn); err != nil {
				l.log.Warn("connection ended", "error", err) // a refused handshake ends here
			}
			l.mu.Lock()
			delete(l.conns, conn)
			l.mu.Unlock()
		}()
	}
}

func (l *listener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()
	_ = l.ln.Close()
	closeClients(l.id)
	l.mu.Lock()
	defer l.mu.Unlock()
	for conn := range l.conns {
		_ = conn.Close()
	}
}
