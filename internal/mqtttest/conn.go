package mqtttest

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// WaitTimeout bounds every wait of a Conn: long enough never to fail a
// healthy test on a slow machine, short enough to end a hung one.
const WaitTimeout = 30 * time.Second

// DialOptions says how a Conn connects. The zero value is a client whose
// id is the identity's name, with a clean start and a session that ends
// with the connection.
type DialOptions struct {
	ClientID      string // empty means the identity's name
	Persistent    bool   // no clean start on the first connection and a session that outlives it
	SessionExpiry uint32 // seconds, with Persistent; 0 means one hour
}

// Message is a message a Conn received.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
}

// Conn is an autopaho client for tests. It reconnects on its own (at once,
// then every 100 ms) but, like any autopaho client, does not subscribe
// again after a reconnect: a test does that after AwaitUp.
type Conn struct {
	CM       *autopaho.ConnectionManager
	msgs     chan Message
	ups      chan *paho.Connack
	connErrs chan error
	cancel   context.CancelFunc
}

// Dial starts connecting id to the broker and returns at once; the
// connection ends with the test (or Close).
func (b *Broker) Dial(t testing.TB, id *Identity, opts DialOptions) *Conn {
	t.Helper()
	u, err := url.Parse(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := &Conn{msgs: make(chan Message, 1024), ups: make(chan *paho.Connack, 64), connErrs: make(chan error, 64)}
	clientID := opts.ClientID
	if clientID == "" {
		clientID = id.Name
	}
	if clientID == "" {
		clientID = "no-certificate"
	}
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		TlsCfg:                        id.TLSConfig(),
		KeepAlive:                     10,
		CleanStartOnInitialConnection: !opts.Persistent,
		ReconnectBackoff:              autopaho.NewConstantBackoff(100 * time.Millisecond),
		ConnectTimeout:                10 * time.Second,
		OnConnectionUp:                func(_ *autopaho.ConnectionManager, ca *paho.Connack) { offer(c.ups, ca) },
		OnConnectError:                func(err error) { offer(c.connErrs, err) },
		ClientConfig: paho.ClientConfig{
			ClientID:          clientID,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){c.received},
		},
	}
	if opts.Persistent {
		cfg.SessionExpiryInterval = opts.SessionExpiry
		if cfg.SessionExpiryInterval == 0 {
			cfg.SessionExpiryInterval = 3600
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.CM, err = autopaho.NewConnection(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// received queues a message for Next; the broker gets its PUBACK when
// this returns.
func (c *Conn) received(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	offer(c.msgs, Message{Topic: p.Topic, Payload: append([]byte(nil), p.Payload...), QoS: p.QoS, Retain: p.Retain})
	return true, nil
}

// offer queues v unless the queue is full; a test that lets 1024 messages
// pile up has already lost track of them.
func offer[T any](ch chan T, v T) {
	select {
	case ch <- v:
	default:
	}
}

// AwaitUp waits for the next time the connection comes up and returns its
// CONNACK (SessionPresent tells whether the broker kept the session).
func (c *Conn) AwaitUp(t testing.TB) *paho.Connack {
	t.Helper()
	select {
	case ca := <-c.ups:
		return ca
	case <-time.After(WaitTimeout):
		t.Fatalf("no connection within %s", WaitTimeout)
		return nil
	}
}

// ConnectError waits for the next failed connection attempt.
func (c *Conn) ConnectError(t testing.TB) error {
	t.Helper()
	select {
	case err := <-c.connErrs:
		return err
	case <-time.After(WaitTimeout):
		t.Fatalf("no failed connection attempt within %s", WaitTimeout)
		return nil
	}
}

// Connected reports whether a connection has come up that AwaitUp has not
// returned yet.
func (c *Conn) Connected() bool { return len(c.ups) > 0 }

// Subscribe subscribes to filter at QoS qos and returns the broker's
// reason code (the granted QoS, or 0x80 and above for a refusal). It
// returns after Sync: the retained messages the subscription brings are
// on their way before anything the test does next.
func (c *Conn) Subscribe(t testing.TB, filter string, qos byte) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	sa, err := c.CM.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}})
	if sa == nil || len(sa.Reasons) != 1 {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
	c.Sync(t)
	return sa.Reasons[0]
}

// Sync waits until the broker has handled everything this client sent
// before. mochi sends a subscription's retained messages after its
// SUBACK, so without this a message published right after a SUBACK can
// reach the subscriber twice, live and as the retained copy. Brokers
// handle one client's packets in order, so the answer to an UNSUBSCRIBE
// (of a filter never subscribed) comes after all of that.
func (c *Conn) Sync(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	if _, err := c.CM.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{"mqtttest/sync"}}); err != nil && ctx.Err() != nil {
		t.Fatalf("sync: %v", err)
	}
}

// MustSubscribe subscribes and fails the test unless the broker grants it.
func (c *Conn) MustSubscribe(t testing.TB, filter string, qos byte) {
	t.Helper()
	if code := c.Subscribe(t, filter, qos); code >= 0x80 {
		t.Fatalf("subscribe %s: refused with reason code %#x", filter, code)
	}
}

// Publish publishes and, at QoS 1, waits for the PUBACK; an error is a
// refusal (a PUBACK reason code of 0x80 or above) or a lost connection.
func (c *Conn) Publish(t testing.TB, topic string, payload []byte, qos byte, retain bool) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	_, err := c.CM.Publish(ctx, &paho.Publish{Topic: topic, Payload: payload, QoS: qos, Retain: retain})
	if err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

// MustPublish publishes and fails the test on any error.
func (c *Conn) MustPublish(t testing.TB, topic string, payload []byte, qos byte, retain bool) {
	t.Helper()
	if err := c.Publish(t, topic, payload, qos, retain); err != nil {
		t.Fatal(err)
	}
}

// Next waits for the next message received.
func (c *Conn) Next(t testing.TB) Message {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(WaitTimeout):
		t.Fatalf("no message within %s", WaitTimeout)
		return Message{}
	}
}

// Close disconnects and waits for the client to stop.
func (c *Conn) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	_ = c.CM.Disconnect(ctx)
	c.cancel()
}
