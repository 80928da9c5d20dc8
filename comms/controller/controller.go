package controller

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/keystone-edge/keystone/comms/message"
	"github.com/keystone-edge/keystone/ota/sign"
)

// Controller is one connection of the fleet controller to the broker. Its
// methods may be called from any goroutine.
type Controller struct {
	cfg  *settings
	log  *slog.Logger
	ring *sign.Keyring // the SignKey's public half: a job is checked as a device would before it leaves
	cm   *autopaho.ConnectionManager

	life   context.Context // ends with Close
	cancel context.CancelFunc
	subs   sync.WaitGroup // the subscribing goroutines

	first     chan error // the first subscription's outcome, once
	firstOnce sync.Once

	mu          sync.Mutex
	lastErr     error           // the last failed connection attempt
	conn        context.Context // the current connection: ends when it is lost; nil while down
	connCancel  context.CancelFunc
	connChanged chan struct{} // closed and replaced when conn changes
	devices     map[string]*device
	stats       Stats
	changed     chan struct{} // closed and replaced whenever a status or state is recorded

	// With Config.Record: messages waiting for the recorder.
	recMu    sync.Mutex
	recQueue []arrival
	recBusy  int // messages in the batch being recorded and handed on
	recWake  chan struct{}
}

// ackInterval is how often the acknowledgements of recorded messages are
// sent (with Config.Record): the broker keeps sending meanwhile, up to the
// client's receive maximum, so this adds latency to nothing a device waits
// for.
const ackInterval = 20 * time.Millisecond

// receiveMaximum is the receive maximum the controller asks for when it
// connects: how many QoS 1 messages the broker may have sent it that it has
// not acknowledged yet. It must be said: mosquitto gives a client that
// does not say it its max_inflight_messages (default 20), and since the
// controller acknowledges only what is recorded, and only every
// ackInterval, 20 in flight held the whole fleet's statuses to 1,000 a
// second (10,000 devices: about 80 s for a rollout the devices had
// finished answering long before). It also bounds the recorder's queue.
const receiveMaximum = 4096

// Stats counts what the controller has received since Connect.
type Stats struct {
	Statuses   uint64 // new job statuses delivered
	Duplicates uint64 // statuses dropped as already seen (same device and seq)
	States     uint64 // device states that replaced the one held
	Malformed  uint64 // messages dropped: not JSON, or not matching their topic
}

// ErrClosed is returned by a Controller's methods after Close.
var ErrClosed = errors.New("controller: closed")

// Connect connects to the broker and subscribes to every device's job
// statuses and states. It returns once the first subscription is in place,
// or with an error when cfg is wrong, the broker refuses the
// subscriptions, or ctx ends first (the error then says why the last
// attempt failed). ctx bounds only this wait: the connection lives,
// reconnecting whenever it is lost and subscribing again each time, until
// Close.
func Connect(ctx context.Context, cfg Config) (*Controller, error) {
	s, err := cfg.settle()
	if err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	c := &Controller{cfg: s, log: s.Logger.With("broker", s.url.Redacted()), first: make(chan error, 1),
		devices: map[string]*device{}, changed: make(chan struct{}), connChanged: make(chan struct{})}
	if s.SignKey != nil {
		if c.ring, err = sign.NewKeyring(s.SignKey.Public().(ed25519.PublicKey)); err != nil {
			return nil, fmt.Errorf("controller: %w", err)
		}
	}
	// The connection outlives ctx, which only bounds the wait below.
	c.life, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if s.Record != nil {
		c.recWake = make(chan struct{}, 1)
		c.subs.Add(1)
		go c.record()
	}
	if c.cm, err = autopaho.NewConnection(c.life, c.clientConfig()); err != nil {
		c.cancel()
		return nil, fmt.Errorf("controller: %w", err)
	}
	select {
	case err = <-c.first:
	case <-ctx.Done():
		err = fmt.Errorf("connect to %s: %w (last attempt: %v)", s.url.Redacted(), ctx.Err(), c.lastError())
	}
	if err != nil {
		_ = c.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("controller: %w", err)
	}
	return c, nil
}

// clientConfig is the autopaho configuration: a persistent session (no
// clean start, an expiry) and the receive handler in the client
// configuration, where it survives reconnects.
func (c *Controller) clientConfig() autopaho.ClientConfig {
	s := c.cfg
	backoff := s.ReconnectBackoff
	if backoff == nil {
		// One controller, not a fleet: it comes back quickly, so that the
		// statuses devices resend after a broker lost its sessions find it
		// subscribed again (devices wait ResendGrace for it).
		backoff = autopaho.NewExponentialBackoff(500*time.Millisecond, 5*time.Second, time.Second, 2)
	}
	return autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{s.url},
		TlsCfg:                        s.tls,
		KeepAlive:                     uint16(min(s.KeepAlive/time.Second, math.MaxUint16)),
		CleanStartOnInitialConnection: false,
		SessionExpiryInterval:         uint32(min(s.SessionExpiry/time.Second, math.MaxUint32)),
		ReconnectBackoff:              backoff,
		OnConnectionUp:                c.connectionUp,
		OnConnectionDown:              c.connectionDown,
		OnConnectError:                c.connectError,
		Errors:                        pahoLog{c.life, c.log},
		PahoErrors:                    pahoLog{c.life, c.log},
		ConnectPacketBuilder: func(cp *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			if cp.Properties == nil {
				cp.Properties = &paho.ConnectProperties{}
			}
			rm := uint16(receiveMaximum)
			cp.Properties.ReceiveMaximum = &rm
			return cp, nil
		},
		ClientConfig: paho.ClientConfig{
			ClientID:          s.ClientID,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){c.received},
			// With Record, a message is acknowledged once recorded.
			EnableManualAcknowledgment: s.Record != nil,
			SendAcksInterval:           ackInterval,
		},
	}
}

// connectionUp subscribes again: whether the broker kept the session or
// not, subscribing is what makes sure the statuses and states flow (a
// broker that lost its state lost the subscriptions too). It must not
// block, so the subscription runs in its own goroutine.
func (c *Controller) connectionUp(cm *autopaho.ConnectionManager, ca *paho.Connack) {
	c.log.Info("connected to the MQTT broker", "client_id", c.cfg.ClientID, "session_present", ca.SessionPresent)
	c.setConn(true)
	c.subs.Add(1)
	go func() {
		defer c.subs.Done()
		err := c.subscribe(c.life, cm)
		if err != nil && c.life.Err() == nil {
			c.log.Error("subscribe after connecting", "error", err)
		}
		// A connection lost while subscribing is not an answer: the next
		// connection subscribes again.
		var refused *refusedError
		if err == nil || errors.As(err, &refused) {
			c.firstOnce.Do(func() { c.first <- err })
		}
	}()
}

func (c *Controller) connectionDown() bool {
	c.setConn(false)
	if c.life.Err() == nil {
		c.log.Warn("connection to the MQTT broker lost; reconnecting")
	}
	return true
}

// setConn records that a connection came up or went down.
func (c *Controller) setConn(up bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.connCancel != nil {
		c.connCancel()
	}
	c.conn, c.connCancel = nil, nil
	if up {
		c.conn, c.connCancel = context.WithCancel(c.life)
	}
	close(c.connChanged)
	c.connChanged = make(chan struct{})
}

// awaitConn waits for a connection and returns it.
func (c *Controller) awaitConn(ctx context.Context) (context.Context, error) {
	for {
		c.mu.Lock()
		conn, changed := c.conn, c.connChanged
		c.mu.Unlock()
		if conn != nil && conn.Err() == nil {
			return conn, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.life.Done():
			return nil, ErrClosed
		}
	}
}

func (c *Controller) connectError(err error) {
	c.mu.Lock()
	c.lastErr = err
	c.mu.Unlock()
	c.log.Warn("connecting to the MQTT broker failed", "error", err)
}

func (c *Controller) lastError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastErr == nil {
		return errors.New("none finished")
	}
	return c.lastErr
}

// statusFilter is where statuses come from: every device's, through the
// shared group when there is one.
func (c *Controller) statusFilter() string {
	f := message.AllStatuses(c.cfg.TopicPrefix)
	if c.cfg.SharedGroup != "" {
		f = "$share/" + c.cfg.SharedGroup + "/" + f
	}
	return f
}

// subscribe subscribes to the statuses and states. A refusal the broker
// may lift by itself (a packet identifier still in use by a session it
// restored, a quota) is tried again a few times on the same connection.
func (c *Controller) subscribe(ctx context.Context, cm *autopaho.ConnectionManager) error {
	delay := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := c.subscribeOnce(ctx, cm)
		var refused *refusedError
		if err == nil || !errors.As(err, &refused) || !refused.transient() || attempt == subscribeTries {
			return err
		}
		c.log.Warn("subscription refused for now; trying again", "error", err)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
		delay *= 2
	}
}

// subscribeTries bounds the tries of a subscription refused for now.
const subscribeTries = 6

func (c *Controller) subscribeOnce(ctx context.Context, cm *autopaho.ConnectionManager) error {
	filters := []string{c.statusFilter(), message.AllStates(c.cfg.TopicPrefix)}
	sub := &paho.Subscribe{}
	for _, f := range filters {
		sub.Subscriptions = append(sub.Subscriptions, paho.SubscribeOptions{Topic: f, QoS: 1})
	}
	sa, err := cm.Subscribe(ctx, sub)
	if sa != nil && len(sa.Reasons) == len(filters) {
		for i, code := range sa.Reasons {
			if code >= 0x80 {
				return &refusedError{filter: filters[i], code: code, prefix: c.cfg.TopicPrefix}
			}
		}
	}
	if err != nil {
		return fmt.Errorf("subscribe to %v: %w", filters, err)
	}
	return nil
}

// refusedError is a subscription the broker refused (its SUBACK reason
// code is 0x80 or above): a matter of configuration, not of the network.
type refusedError struct {
	filter, prefix string
	code           byte
}

// transient reports a refusal that is not about this identity's rights:
// unspecified (0x80), implementation specific (0x83), packet identifier in
// use (0x91; mochi reuses the identifiers of messages it re-sends from a
// restored session) or quota exceeded (0x97).
func (e *refusedError) transient() bool {
	switch e.code {
	case 0x80, 0x83, 0x91, 0x97:
		return true
	}
	return false
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("the broker refused the subscription to %s (reason code %#x): is this identity allowed on %s/#?",
		e.filter, e.code, e.prefix)
}

// Close disconnects and waits for the controller's goroutines, until ctx
// ends. The session stays on the broker for SessionExpiry: statuses
// published meanwhile wait there for the next Connect with the same
// client id.
func (c *Controller) Close(ctx context.Context) error {
	if c.cfg.Record != nil {
		// The acknowledgements of what was recorded leave every
		// ackInterval: give the last ones time to go (a status whose
		// acknowledgement is lost comes again, as a duplicate).
		select {
		case <-time.After(3 * ackInterval):
		case <-ctx.Done():
		}
	}
	c.cancel()
	err := c.cm.Disconnect(ctx)
	c.subs.Wait()
	return err
}

// Stats returns the counts so far.
func (c *Controller) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// pahoLog passes the MQTT library's error messages on at debug level: the
// connection events that matter are logged by the Controller itself.
type pahoLog struct {
	ctx context.Context
	log *slog.Logger
}

func (l pahoLog) Println(v ...any) {
	if l.log.Enabled(l.ctx, slog.LevelDebug) {
		l.log.DebugContext(l.ctx, fmt.Sprint(v...))
	}
}

func (l pahoLog) Printf(format string, v ...any) {
	if l.log.Enabled(l.ctx, slog.LevelDebug) {
		l.log.DebugContext(l.ctx, fmt.Sprintf(format, v...))
	}
}
